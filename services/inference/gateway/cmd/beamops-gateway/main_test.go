package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary runs main() itself when BEAMOPS_GATEWAY_TEST_MAIN is set.
func TestMain(m *testing.M) {
	if os.Getenv("BEAMOPS_GATEWAY_TEST_MAIN") == "1" {
		os.Args = append([]string{"beamops-gateway"}, strings.Fields(os.Getenv("BEAMOPS_GATEWAY_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func gateway(args, token string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BEAMOPS_GATEWAY_TEST_MAIN=1", "BEAMOPS_GATEWAY_TEST_ARGS="+args)
	if token != "" {
		cmd.Env = append(cmd.Env, "BEAMOPS_GATEWAY_TOKEN="+token)
	} else {
		cmd.Env = append(cmd.Env, "BEAMOPS_GATEWAY_TOKEN=")
	}
	return cmd
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestBadCommandLinesExit2(t *testing.T) {
	for _, c := range []struct{ args, token, words string }{
		{"--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 127.0.0.1:2", "", "no token for GatewayService calls"},
		{"--listen 127.0.0.1:0 --service 127.0.0.1:1", "t", "--triton are required"},
		{"--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 127.0.0.1:2 --max-message-bytes 0", "t", "must be positive"},
		{"--bogus", "t", "flag provided but not defined"},
		{"--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 127.0.0.1:2 --triton-library /x.so", "t", "needs --triton-repository and --triton-backends"},
		{"--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 0.0.0.0:2 --triton-library /x.so --triton-repository /r --triton-backends /b",
			"t", "--triton must be a loopback HOST:PORT"},
		{"--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 127.0.0.1:2 --triton-backend-config python", "t", "want BACKEND,SETTING=VALUE"},
	} {
		out, err := gateway(c.args, c.token).CombinedOutput()
		if exitCode(err) != 2 || !strings.Contains(string(out), c.words) {
			t.Errorf("%s: exit %d, %s", c.args, exitCode(err), out)
		}
	}
}

func TestCannotListenExits1(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	out, err := gateway("--listen "+busy.Addr().String()+" --service 127.0.0.1:1 --triton 127.0.0.1:2", "t").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "cannot listen on "+busy.Addr().String()) {
		t.Fatalf("exit %d: %s", exitCode(err), out)
	}
}

func TestMissingTritonLibraryExits1(t *testing.T) {
	out, err := gateway("--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 127.0.0.1:0 "+
		"--triton-library /nonexistent/libtritonserver.so --triton-repository /r --triton-backends /b", "t").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "cannot load Triton's library") {
		t.Fatalf("exit %d: %s", exitCode(err), out)
	}
}

func TestStartsWithoutServiceAndStopsOnSIGTERM(t *testing.T) {
	cmd := gateway("--listen 127.0.0.1:0 --service 127.0.0.1:1 --triton 127.0.0.1:2", "t")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	listening := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	addr := ""
	for lines.Scan() {
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("no listening line with the bound port (%q)", addr)
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	go func() {
		for lines.Scan() {
		}
	}()
	started := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if exitCode(err) != 0 || time.Since(started) > 6*time.Second {
		t.Fatalf("exit %d after %v", exitCode(err), time.Since(started))
	}
}
