package redistest

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestStandaloneStopStart(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	ctx := context.Background()
	if port := s.Port(); port == 6379 || port <= 0 {
		t.Fatalf("Port() = %d; want a free non-default port", port)
	}
	if _, err := Do(ctx, s.Addr(), "SET", "k", "v"); err != nil {
		t.Fatalf("SET = %v", err)
	}
	if got, err := Do(ctx, s.Addr(), "CONFIG", "GET", "save"); err != nil || pairs(got)["save"] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want persistence off", got, err)
	}
	s.Stop()
	s.Stop() // idempotent
	if _, err := Do(ctx, s.Addr(), "PING"); err == nil {
		t.Fatal("PING after Stop = nil error; want a connection error")
	}
	s.Start()
	if got, err := Do(ctx, s.Addr(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Start = %v, %v; want PONG", got, err)
	}
	if got, err := Do(ctx, s.Addr(), "GET", "k"); err != nil || got != nil {
		t.Errorf("GET k after restart = %v, %v; want nil (no persistence)", got, err)
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	name, addrs := Sentinel(t)
	if len(addrs) != 1 {
		t.Fatalf("Sentinel() returned %d addresses; want 1", len(addrs))
	}
	reply, err := Do(context.Background(), addrs[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := reply.([]any)
	if len(a) != 2 || a[0] != "127.0.0.1" {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME = %v; want [127.0.0.1 port]", reply)
	}
	master := "127.0.0.1:" + a[1].(string)
	if got, err := Do(context.Background(), master, "ROLE"); err != nil || got.([]any)[0] != "master" {
		t.Errorf("ROLE on %s = %v, %v; want master", master, got, err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	addrs := Cluster(t)
	if len(addrs) != 3 {
		t.Fatalf("Cluster() returned %d addresses; want 3", len(addrs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range addrs {
		info, err := Do(ctx, a, "CLUSTER", "INFO")
		if err != nil {
			t.Fatal(err)
		}
		if got := infoField(info, "cluster_slots_assigned"); got != strconv.Itoa(clusterSlots) {
			t.Errorf("%s: cluster_slots_assigned = %s; want %d", a, got, clusterSlots)
		}
	}
}

func TestInfoField(t *testing.T) {
	info := "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n"
	for _, tt := range []struct{ field, want string }{
		{"role", "slave"},
		{"master_link_status", "up"},
		{"missing", ""},
		{"master_link", ""},
	} {
		if got := infoField(info, tt.field); got != tt.want {
			t.Errorf("infoField(%q) = %q; want %q", tt.field, got, tt.want)
		}
	}
}
