package mqtt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestIntegrationMutualTLS runs a Mosquitto of its own with a TLS listener
// that requires client certificates, and the connector on a tls:// URL with
// a CA, a client certificate and key (the coalescing TLS dialer): a QoS 1
// intake from a device over TLS reaches Kafka (and the broker does refuse
// clients without a certificate).
func TestIntegrationMutualTLS(t *testing.T) {
	e := newITEnv(t, "mqtttls")
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Fatal("mosquitto not installed (make services installs it)")
		}
	}
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
cafile %[2]s/ca.pem
certfile %[2]s/server.pem
keyfile %[2]s/server-key.pem
require_certificate true
persistence false
max_queued_messages 0
user root
log_dest stderr
log_type error
`, port, dir)
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "mosquitto.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto with TLS did not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	tlsCfg := config.TLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}
	cfg, sh := e.config()
	cfg.Shadow.Enabled, cfg.Commands.Enabled = false, false
	sh.MQTT = config.MQTT{URL: "tls://" + addr, TLS: tlsCfg}
	stop := startConnector(t, cfg, sh)
	defer stop()
	waitSubscribed()

	// The device, over mutual TLS too.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(tlsCfg.CAFile)
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(tlsCfg.CertFile, tlsCfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	dev := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: "it-tls-dev-" + e.id})
	if _, err := dev.Connect(ctx, &paho.Connect{ClientID: "it-tls-dev-" + e.id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(&paho.Disconnect{})
	at := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	body := fmt.Sprintf(`{"messageId":"tls-1","deviceId":"pc-3","patientId":"p3","medicationId":"m3","intakeTime":%q,"status":"taken","dosage":1}`, at.Format(time.RFC3339))
	if _, err := dev.Publish(ctx, &paho.Publish{Topic: e.root + "medical/devices/pc-3/medication_intake", QoS: 1, Payload: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	if !e.consume(t, topics.Intake, 30*time.Second, func(r *kgo.Record) bool {
		in := &pb.MedicationIntake{}
		if err := codec.Unmarshal(r.Value, in); err != nil {
			t.Fatal(err)
		}
		if in.Meta.EventId != "tls-1" || string(r.Key) != "p3" || in.IntakeTimeMs != at.UnixMilli() {
			t.Errorf("intake over TLS = %v key %q", in, r.Key)
		}
		return true
	}) {
		t.Fatal("the intake published over TLS did not reach Kafka")
	}

	// The broker does require client certificates (so the connector did
	// present its own): a TLS client without one is refused.
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM(caPEM)
	d2 := tls.Dialer{Config: &tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS12}}
	if c, err := d2.DialContext(ctx, "tcp", addr); err == nil {
		// TLS 1.3 reports a missing client certificate on the first read.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		if rerr == nil {
			t.Error("the broker accepted a TLS client without a certificate")
		}
	}
}

// newCert writes name.pem and name-key.pem into dir: a CA when parent is
// nil, else a certificate for 127.0.0.1 / localhost signed by parent.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "wardstream-it-" + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
