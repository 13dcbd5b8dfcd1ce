package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// SentinelMaster is the master name the Sentinel setup monitors.
const SentinelMaster = "engage-test"

// Sentinel starts a master, one replica and one sentinel monitoring them,
// and waits until the replica is in sync and the sentinel reports the
// master and knows the replica. Clients connect through the sentinel with
// the returned master name. t.Cleanup stops all three.
func Sentinel(t testing.TB) (masterName string, sentinelAddrs []string) {
	t.Helper()
	// No diskless-sync delay: the replica syncs at once instead of after 5s.
	master := StartServer(t, "--repl-diskless-sync-delay", "0")
	replica := StartServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))

	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s 5000\n"+
		"sentinel failover-timeout %[1]s 60000\n", SentinelMaster, master.Port())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("redistest: writing sentinel config: %v", err)
	}
	sentinel := startServer(t, &Server{conf: conf})

	waitFor(t, "replica in sync", func(ctx context.Context) error {
		info, err := Do(ctx, replica.Addr(), "INFO", "replication")
		if err != nil {
			return err
		}
		if st := infoField(info, "master_link_status"); st != "up" {
			return fmt.Errorf("master_link_status %q", st)
		}
		return nil
	})
	waitFor(t, "sentinel reports the master", func(ctx context.Context) error {
		reply, err := Do(ctx, sentinel.Addr(), "SENTINEL", "MASTER", SentinelMaster)
		if err != nil {
			return err
		}
		fields := pairs(reply)
		if fields["flags"] != "master" || fields["port"] != strconv.Itoa(master.Port()) {
			return fmt.Errorf("sentinel sees flags %q on port %q", fields["flags"], fields["port"])
		}
		if n, _ := strconv.Atoi(fields["num-slaves"]); n < 1 {
			return fmt.Errorf("sentinel knows %q replicas", fields["num-slaves"])
		}
		return nil
	})
	return SentinelMaster, []string{sentinel.Addr()}
}

// pairs turns a flat [name, value, ...] array reply into a map.
func pairs(reply any) map[string]string {
	m := make(map[string]string)
	a, _ := reply.([]any)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		v, _ := a[i+1].(string)
		m[k] = v
	}
	return m
}

// clusterSlots is the number of hash slots in a Redis Cluster.
const clusterSlots = 16384

// Cluster starts three cluster-enabled masters (no replicas), assigns each
// a third of the hash slots, joins them and waits until every node reports
// cluster_state:ok. It returns the nodes' addresses. t.Cleanup stops them.
// It needs Redis 7.0 or later (cluster-port, CLUSTER ADDSLOTSRANGE).
func Cluster(t testing.TB) (addrs []string) {
	t.Helper()
	const n = 3
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = startServer(t, &Server{cluster: true})
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for i, s := range nodes {
		first, last := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if _, err := Do(ctx, s.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last)); err != nil {
			t.Fatalf("redistest: assigning slots %d-%d to %s: %v", first, last, s.Addr(), err)
		}
		addrs = append(addrs, s.Addr())
	}
	for _, s := range nodes[1:] {
		if _, err := Do(ctx, nodes[0].Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port()), strconv.Itoa(s.busPort)); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", s.Addr(), err)
		}
	}
	for _, s := range nodes {
		waitFor(t, "cluster state ok on "+s.Addr(), func(ctx context.Context) error {
			info, err := Do(ctx, s.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if st, known := infoField(info, "cluster_state"), infoField(info, "cluster_known_nodes"); st != "ok" || known != strconv.Itoa(n) {
				return fmt.Errorf("cluster_state %q, %s known nodes", st, known)
			}
			return nil
		})
	}
	return addrs
}
