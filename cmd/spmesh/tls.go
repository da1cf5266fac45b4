package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/spmesh/spmesh"
	"github.com/urfave/cli/v3"
)

// TLS flag names.
const (
	flagTLSCert    = "tls-cert"
	flagTLSKey     = "tls-key"
	flagTLSCA      = "tls-ca"
	flagRequireTLS = "require-tls"
	flagVerifyNode = "verify-node"
)

// tlsFlags are the transport security flags of every command.
func tlsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagTLSCert, Category: "security",
			Usage:   "this node's certificate (PEM `file`): listen on tls+tcp:// and present it to peers (with --tls-key); its first DNS name is the default --name",
			Sources: cli.EnvVars("SPMESH_TLS_CERT")},
		&cli.StringFlag{Name: flagTLSKey, Category: "security",
			Usage:   "the private key of --tls-cert (PEM `file`)",
			Sources: cli.EnvVars("SPMESH_TLS_KEY")},
		&cli.StringFlag{Name: flagTLSCA, Category: "security",
			Usage:   "trust only this CA (PEM `file`) for peers' certificates; with --tls-cert, peers must present one too (mutual TLS)",
			Sources: cli.EnvVars("SPMESH_TLS_CA")},
		&cli.BoolFlag{Name: flagRequireTLS, Category: "security",
			Usage:   "never talk plaintext: plaintext endpoints are not dialed, plaintext addresses are refused",
			Sources: cli.EnvVars("SPMESH_REQUIRE_TLS")},
		&cli.BoolFlag{Name: flagVerifyNode, Category: "security",
			Usage:   "require the certificate at each endpoint to name the node that advertised it (a DNS name equal to the node name)",
			Sources: cli.EnvVars("SPMESH_VERIFY_NODE")},
	}
}

// tlsSettings reads the TLS flags: the policy for the mesh node, and one
// config for both sides of sockets wired by address alone (nil without
// TLS flags).
func tlsSettings(cmd *cli.Command) (pol spmesh.TLSPolicy, both *tls.Config, err error) {
	certFile, keyFile, caFile := cmd.String(flagTLSCert), cmd.String(flagTLSKey), cmd.String(flagTLSCA)
	pol.Require, pol.VerifyNode = cmd.Bool(flagRequireTLS), cmd.Bool(flagVerifyNode)
	if (certFile == "") != (keyFile == "") {
		return pol, nil, usagef("--tls-cert and --tls-key go together")
	}
	if certFile == "" && caFile == "" {
		switch {
		case pol.Require:
			return pol, nil, usagef("--require-tls: give --tls-ca (and --tls-cert/--tls-key to listen or for mutual TLS)")
		case pol.VerifyNode:
			return pol, nil, usagef("--verify-node: give --tls-ca and --tls-cert/--tls-key")
		}
		return pol, nil, nil
	}
	both = &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return pol, nil, usagef("--tls-cert %s, --tls-key %s: %v", certFile, keyFile, err)
		}
		both.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return pol, nil, usagef("--tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return pol, nil, usagef("--tls-ca %s: no PEM certificate in it", caFile)
		}
		both.RootCAs = pool
		if certFile != "" {
			// A CA and our own certificate: mutual TLS.
			both.ClientCAs = pool
			both.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	pol.Client = both
	if certFile != "" {
		pol.Server = both
	}
	return pol, both, nil
}

// explainJoin adds the likely cause to a failed join: a seed that hangs up
// during the gossip exchange is most often a mesh with another --label or
// --key (or the same mesh with TLS on one side only).
func explainJoin(err error) error {
	msg := err.Error()
	var hint string
	switch {
	case strings.Contains(msg, "label"):
		hint = "the seed belongs to a mesh with another --label (SPMESH_LABEL)"
	case strings.Contains(msg, "decrypt") || strings.Contains(msg, "encrypt") || strings.Contains(msg, "keyring"):
		hint = "the seed uses another gossip --key (SPMESH_KEY), or none while this node has one (or the reverse)"
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:"):
		hint = "a TLS handshake with the seed failed: check --tls-ca, --tls-cert and --tls-key on both sides"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset"):
		hint = "the seed hung up during the exchange: most likely its --label or --key (SPMESH_LABEL, SPMESH_KEY) differs from this node's, or TLS is on at one side only"
	default:
		return err
	}
	return fmt.Errorf("%w (likely cause: %s)", err, hint)
}

// notConnected explains a wait that ran out while the socket had no peer:
// its last connection error (a refused handshake, an endpoint refused by
// --require-tls, a failed dial), or "".
func notConnected(st spmesh.Stats) string {
	if st.Peers > 0 || st.LastError == "" {
		return ""
	}
	return fmt.Sprintf("; not connected to any (last error: %s)", st.LastError)
}

// certName is the first DNS name of the certificate in c (nil: none): the
// default node name with --tls-cert, so that --verify-node holds without
// repeating the name in --name.
func certName(c *tls.Config) string {
	if c == nil || len(c.Certificates) == 0 || c.Certificates[0].Leaf == nil {
		return ""
	}
	if names := c.Certificates[0].Leaf.DNSNames; len(names) > 0 {
		return names[0]
	}
	return ""
}
