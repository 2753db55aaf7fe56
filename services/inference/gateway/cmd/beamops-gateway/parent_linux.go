package main

import (
	"errors"
	"os"
	"syscall"
)

// exitWithParent asks the kernel to send this process SIGTERM when the process that started it
// dies (prctl PR_SET_PDEATHSIG), so a gateway whose service was killed does not keep serving
// with routes and token answers nobody updates. Fails if the parent is already gone.
func exitWithParent() error {
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return errno
	}
	if os.Getppid() != parent { // it died before the request took effect
		return errors.New("the process that started the gateway has exited")
	}
	return nil
}
