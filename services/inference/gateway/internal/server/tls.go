package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLS is what the gateway serves its callers with when the service serves TLS: the service's
// own certificate chain and key, and with a client CA, mutual TLS (callers must present a
// certificate that CA signed), as the service itself would demand.
type TLS struct {
	CertFile, KeyFile, ClientCAFile string
}

// Enabled: a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// serverOption builds the transport credentials; an error names what is wrong.
func (t TLS) serverOption() (grpc.ServerOption, error) {
	config, err := t.config()
	if err != nil {
		return nil, err
	}
	return grpc.Creds(credentials.NewTLS(config)), nil
}

// config is the TLS configuration of both fronts (gRPC and REST).
func (t TLS) config() (*tls.Config, error) {
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate or key: %w", err)
	}
	config := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("TLS client CA: no PEM certificate in the file")
		}
		config.ClientCAs = pool
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return config, nil
}
