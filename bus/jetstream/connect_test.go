package jetstream_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

func TestConnectConfigValidation(t *testing.T) {
	t.Parallel()
	url := []string{"nats://127.0.0.1:4222"}
	cases := map[string]jetstream.ConnectConfig{
		"no urls":                 {},
		"bad scheme":              {URLs: []string{"http://127.0.0.1:4222"}},
		"no host":                 {URLs: []string{"nats://:4222"}},
		"unparsable url":          {URLs: []string{"nats://[::1"}},
		"password without user":   {URLs: url, Password: "secret"},
		"user and token":          {URLs: url, User: "u", Password: "p", Token: "t"},
		"token and creds":         {URLs: url, Token: "t", CredsFile: "/x.creds"},
		"bad inline nkey seed":    {URLs: url, NKeySeed: "SUnotaseed"},
		"missing nkey seed file":  {URLs: url, NKeySeed: filepath.Join(t.TempDir(), "missing.nk")},
		"cert without key":        {URLs: url, TLSCertFile: "client.pem"},
		"key without certificate": {URLs: url, TLSKeyFile: "client-key.pem"},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := jetstream.Connect(testContext(t), cfg); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("Connect(%+v) = %v, want bus.ErrInvalidConfig", cfg, err)
			}
		})
	}
}

func TestConnectNothingListening(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = jetstream.Connect(testContext(t), jetstream.ConnectConfig{URLs: []string{"nats://" + addr}})
	if !errors.Is(err, bus.ErrNotConnected) {
		t.Fatalf("Connect to a closed port = %v, want bus.ErrNotConnected", err)
	}
}

// startAuthServer runs a plain nats-server with opts (loopback, random
// port) and returns its client URL.
func startAuthServer(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(hangGuard) {
		t.Fatal("auth server not ready")
	}
	return s.ClientURL()
}

// TestConnectCredentials logs in with each kind of credential, and checks
// the server refuses the connection without it.
func TestConnectCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	userKey, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userPub, _ := userKey.PublicKey()
	userSeed, _ := userKey.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, userSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	nkeyURL := startAuthServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: userPub}}})

	cases := []struct {
		name string
		cfg  jetstream.ConnectConfig
	}{
		{"user and password", jetstream.ConnectConfig{URLs: []string{startAuthServer(t, &server.Options{Username: "alice", Password: "s3cret"})}, User: "alice", Password: "s3cret"}},
		{"token", jetstream.ConnectConfig{URLs: []string{startAuthServer(t, &server.Options{Authorization: "tok3n"})}, Token: "tok3n"}},
		{"inline nkey seed", jetstream.ConnectConfig{URLs: []string{nkeyURL}, NKeySeed: string(userSeed)}},
		{"nkey seed file", jetstream.ConnectConfig{URLs: []string{nkeyURL}, NKeySeed: seedFile}},
		{"credentials file", credsConfig(t, dir)},
		{"client certificate", tlsConfig(t, dir)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			nc, err := jetstream.Connect(ctx, tc.cfg)
			if err != nil {
				t.Fatalf("Connect with %s: %v", tc.name, err)
			}
			nc.Close()

			bare := jetstream.ConnectConfig{URLs: tc.cfg.URLs, TLSCAFile: tc.cfg.TLSCAFile}
			if nc, err := jetstream.Connect(ctx, bare); err == nil {
				nc.Close()
				t.Fatalf("the server accepted a connection without the %s", tc.name)
			}
		})
	}
}

// credsConfig runs a server in operator mode and returns a configuration
// logging in with a credentials file it trusts.
func credsConfig(t *testing.T, dir string) jetstream.ConnectConfig {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	operatorPub, _ := operator.PublicKey()
	account, err := nkeys.CreateAccount()
	must(err)
	accountPub, _ := account.PublicKey()
	user, err := nkeys.CreateUser()
	must(err)
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()

	operatorClaims := jwt.NewOperatorClaims(operatorPub)
	operatorJWT, err := operatorClaims.Encode(operator)
	must(err)
	decodedOperator, err := jwt.DecodeOperatorClaims(operatorJWT)
	must(err)
	accountJWT, err := jwt.NewAccountClaims(accountPub).Encode(operator)
	must(err)
	userJWT, err := jwt.NewUserClaims(userPub).Encode(account)
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, userSeed)
	must(err)
	credsFile := filepath.Join(dir, "user.creds")
	must(os.WriteFile(credsFile, creds, 0o600))

	resolver := &server.MemAccResolver{}
	must(resolver.Store(accountPub, accountJWT))
	url := startAuthServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{decodedOperator}, AccountResolver: resolver})
	return jetstream.ConnectConfig{URLs: []string{url}, CredsFile: credsFile}
}

// tlsConfig runs a server that requires client certificates from a test CA
// and returns a configuration presenting one.
func tlsConfig(t *testing.T, dir string) jetstream.ConnectConfig {
	t.Helper()
	ca, caKey := newCert(t, nil, nil, "test CA", true)
	serverCert, serverKey := newCert(t, ca, caKey, "127.0.0.1", false)
	clientCert, clientKey := newCert(t, ca, caKey, "client", false)

	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Raw)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	url := startAuthServer(t, &server.Options{
		TLS:       true,
		TLSVerify: true,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
	})
	return jetstream.ConnectConfig{URLs: []string{url}, TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}
}

// newCert makes a certificate for name, signed by parent (self-signed when
// parent is nil).
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
