package bench

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/testutil"
)

func TestGetPath(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("connectors:\n  mqtt:\n    connections: 6\n    client_id: x\n"), &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path []string
		want string
		ok   bool
	}{
		{[]string{"connectors", "mqtt", "connections"}, "6", true},
		{[]string{"connectors", "mqtt", "client_id"}, "x", true},
		{[]string{"connectors", "mqtt"}, "", false}, // a mapping, not a scalar
		{[]string{"connectors", "rtsp", "connections"}, "", false},
		{[]string{"connectors", "mqtt", "connections", "deeper"}, "", false},
	} {
		if got, ok := getPath(&doc, c.path); got != c.want || ok != c.ok {
			t.Errorf("%v: %q %v, want %q %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

// TestIntegrationEndSessions: a persistent session with a QoS 1
// subscription (as the connector's) is gone from the real Mosquitto after
// endSessions: reconnecting without clean start finds no session.
func TestIntegrationEndSessions(t *testing.T) {
	svc := testutil.Integration(t)
	u, err := url.Parse(svc.MQTTURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := testutil.Unique(t, "wsbench")
	connect := func(clean bool) (*paho.Client, net.Conn, bool) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		cl := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id})
		expiry := uint32(300)
		ca, err := cl.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		if err != nil || ca.ReasonCode != 0 {
			t.Fatalf("connect: %v %v", err, ca)
		}
		return cl, conn, ca.SessionPresent
	}
	cl, conn, _ := connect(true)
	if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/" + id + "/medical/+/+/+/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	_ = cl.Disconnect(&paho.Disconnect{})
	conn.Close()
	// The session outlives the connection: the check below can fail.
	cl, conn, present := connect(false)
	if !present {
		t.Fatal("the broker kept no session: the test would prove nothing")
	}
	_ = cl.Disconnect(&paho.Disconnect{})
	conn.Close()

	if err := endSessions(ctx, svc.MQTTURL, []string{id}); err != nil {
		t.Fatal(err)
	}
	cl, conn, present = connect(false)
	defer conn.Close()
	defer cl.Disconnect(&paho.Disconnect{})
	if present {
		t.Fatal("the session is still there after endSessions")
	}
	// This connection made a new persistent session: end it too.
	_ = cl.Disconnect(&paho.Disconnect{})
	if err := endSessions(ctx, svc.MQTTURL, []string{id}); err != nil {
		t.Fatal(err)
	}
}
