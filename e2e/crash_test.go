package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDuringUserAdds kills Caddy (SIGKILL, by PID) in the middle of a
// burst of `user add` requests, restarts it on the same store, and checks
// that no half-made user is left: every listed user is found by its
// username and its email, every add that was answered 201 survived, and
// every username the burst tried is either a whole listed user or free
// again (SECURITY.md, half-done writes).
func TestCrashDuringUserAdds(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { crashDuringUserAdds(t, "") })
	t.Run("redis", func(t *testing.T) {
		crashDuringUserAdds(t, "store redis redis://"+startRedisServer(t)+"/0")
	})
}

const (
	crashRounds   = 3
	crashBurst    = 60 // user adds per round
	crashInFlight = 8  // concurrent adds
)

func crashDuringUserAdds(t *testing.T, storeLine string) {
	authPort := freePort(t)
	c := startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer http://auth.localhost:%[1]d
		dev
		%[2]s
	}
}

http://auth.localhost:%[1]d {
	gatehouse_idp
}
`, authPort, storeLine))
	admin := &http.Client{Timeout: 10 * time.Second}
	acked := map[string]bool{} // usernames answered 201, over all rounds
	for round := range crashRounds {
		names := make([]string, crashBurst)
		for i := range names {
			names[i] = fmt.Sprintf("crash%d-%02d", round, i)
		}
		ok, killedAfter := burstAndKill(t, c, names)
		for _, n := range ok {
			acked[n] = true
		}
		c.start()
		t.Logf("round %d: killed after %d of %d adds answered", round, killedAfter, len(names))

		listed := checkListedUsers(t, c, admin)
		for n := range acked {
			if !listed[n] {
				t.Errorf("round %d: %s was added (201) before the kill but is not listed after the restart", round, n)
			}
		}
		// A name the burst tried is a whole user or free: if it is not
		// listed, adding it again must succeed (a half-made user or an
		// orphan index entry would answer 409).
		var retried int
		for _, n := range names {
			if listed[n] {
				continue
			}
			retried++
			if status, body := addUser(context.Background(), admin, c.admin, n); status != http.StatusCreated {
				t.Errorf("round %d: %s is not listed, yet adding it again answers %d %s", round, n, status, body)
			} else {
				acked[n] = true
			}
		}
		t.Logf("round %d: %d users listed, %d names free again and re-added", round, len(listed), retried)
		if t.Failed() {
			t.FailNow()
		}
	}
	listed := checkListedUsers(t, c, admin)
	for n := range acked {
		if !listed[n] {
			t.Errorf("%s was added but is not listed at the end", n)
		}
	}
}

// burstAndKill adds names over the admin API, crashInFlight at a time,
// and kills Caddy with SIGKILL after a random number of answers, while
// other adds are still being served. It returns the names answered 201
// and how many answers came before the kill; Caddy is left stopped.
func burstAndKill(t *testing.T, c *caddy, names []string) (created []string, answered int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Killed after 3 to ~half the burst's answers, plus up to 20ms: the
	// workers are all busy then, so some adds are mid-way.
	killAt := 3 + randN(len(names)/2)
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		done  atomic.Int32
		next  atomic.Int32
		kill  = make(chan struct{})
		once  sync.Once
		kills = func() { once.Do(func() { close(kill) }) }
	)
	for range crashInFlight {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) || ctx.Err() != nil {
					return
				}
				status, _ := addUser(ctx, client, c.admin, names[i])
				if status == http.StatusCreated {
					mu.Lock()
					created = append(created, names[i])
					mu.Unlock()
				}
				if status != 0 && int(done.Add(1)) >= killAt {
					kills()
				}
			}
		})
	}
	go func() { wg.Wait(); kills() }() // a burst that ends early still ends in a kill
	<-kill
	time.Sleep(time.Duration(randN(20_000)) * time.Microsecond)
	answered = int(done.Load())
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.waitErr
	c.cmd = nil
	cancel() // the workers see errors from now on and stop
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return created, answered
}

// addUser posts one user (email <name>@example.com) to the admin API and
// returns the status, 0 when no answer came (refused, reset, killed).
func addUser(ctx context.Context, client *http.Client, adminAddr, name string) (int, string) {
	body, _ := json.Marshal(map[string]any{
		"username": name, "email": name + "@example.com", "password": "tulip-orbit-canoe-gravel", "groups": []string{"crash"},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+adminAddr+"/gatehouse/users", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// checkListedUsers reads `caddy gatehouse user list` and checks that each
// listed user is found by its username and by its email, and that no
// name is listed twice. It returns the listed usernames.
func checkListedUsers(t *testing.T, c *caddy, client *http.Client) map[string]bool {
	t.Helper()
	out, err := c.cli("", "user", "list")
	if err != nil {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "USERNAME") {
		t.Fatalf("user list: no header:\n%s", out)
	}
	listed := map[string]bool{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Errorf("user list: odd line %q", line)
			continue
		}
		name, email := f[0], f[1]
		if listed[name] {
			t.Errorf("user list: %s listed twice", name)
		}
		listed[name] = true
		if email != name+"@example.com" {
			t.Errorf("user list: %s has email %q", name, email)
		}
		for _, login := range []string{name, email} {
			if got, err := lookupUser(client, c.admin, login); err != nil || got != name {
				t.Errorf("listed user %s: looking up %q finds %q, %v", name, login, got, err)
			}
		}
	}
	return listed
}

// lookupUser finds the user a login name (username or email) resolves to,
// through an admin action that looks the user up and changes nothing of
// theirs (forgetting trusted devices; these users have none).
func lookupUser(client *http.Client, adminAddr, login string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": login})
	resp, err := client.Post("http://"+adminAddr+"/gatehouse/users/forget-devices", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Username string `json:"username"`
		Error    string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(out.Error)
	}
	return out.Username, nil
}

// randN returns a random int in [0, n), n > 0.
func randN(n int) int {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int(binary.LittleEndian.Uint64(b[:]) % uint64(n))
}
