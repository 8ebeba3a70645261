package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/logtest"
)

// TestForwardAuthWithNginx runs the README's nginx auth_request config
// against a Gatehouse forward-auth gate: sign in through nginx, reach the
// upstream with the identity headers.
func TestForwardAuthWithNginx(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatal("nginx is not installed (run .ci/run, which installs it)")
	}
	up := echoUpstream(t)
	authPort, gatePort, nginxPort := freePort(t), freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://auth.localhost:%d", authPort)
	c := startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %s
		dev
	}
}
%s {
	gatehouse_idp
}
http://:%d {
	gatehouse_gate {
		forward_auth
		hosts http://nginx.localhost:%d
	}
}
`, issuer, issuer, gatePort, nginxPort))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--password-stdin", "--email", "alice@example.com"); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	dir := t.TempDir()
	conf := fmt.Sprintf(`
user root;
daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen 127.0.0.1:%[2]d;
        server_name nginx.localhost;

        location = /.gatehouse-auth {
            internal;
            proxy_pass http://127.0.0.1:%[3]d/.gatehouse/verify?redirect=off&acr=1;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Forwarded-Method $request_method;
        }
        location /.gatehouse/ {
            proxy_pass http://127.0.0.1:%[3]d;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
        location / {
            auth_request /.gatehouse-auth;
            auth_request_set $gh_user $upstream_http_remote_user;
            auth_request_set $gh_email $upstream_http_remote_email;
            auth_request_set $gh_name $upstream_http_remote_name;
            auth_request_set $gh_groups $upstream_http_remote_groups;
            auth_request_set $gh_acr $upstream_http_remote_acr;
            proxy_set_header Remote-User $gh_user;
            proxy_set_header Remote-Email $gh_email;
            proxy_set_header Remote-Name $gh_name;
            proxy_set_header Remote-Groups $gh_groups;
            proxy_set_header Remote-Acr $gh_acr;
            error_page 401 = @gatehouse_login;
            proxy_pass %[4]s;
        }
        location @gatehouse_login {
            return 302 /.gatehouse/login?return=$request_uri;
        }
    }
}
`, dir, nginxPort, gatePort, up.URL)
	confPath := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)
	cmd := exec.Command("nginx", "-c", confPath, "-p", dir)
	out := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// nginx forks workers that inherit its output: stop the whole
	// process group (by its id, never by name), and do not wait for
	// pipes a stray worker might hold.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	site := fmt.Sprintf("http://nginx.localhost:%d", nginxPort)
	for i := 0; ; i++ {
		if r, err := newBrowser(t).client.Get(site + "/.gatehouse/static/gatehouse.css"); err == nil {
			r.Body.Close()
			break
		}
		if i > 100 {
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s %s", out, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	s := &gateSetup{idpSetup: &idpSetup{issuer: issuer}}
	b := newBrowser(t)
	resp, body, echo := s.visit(t, b, site+"/page?x=1", map[string]string{"Remote-User": "mallory", "Remote-Acr": "9",
		"Remote-Email": "mallory@evil.example", "Remote-Name": "Mallory", "Remote_User": "root"})
	if echo == nil || echo["Remote-User"] != "alice" || echo["_path"] != "/page" || echo["Remote-Acr"] != "1" ||
		echo["Remote-Email"] != "alice@example.com" || echo["Remote-Name"] != "" {
		logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("through nginx: %d %s\n%s\n%s", resp.StatusCode, resp.Request.URL, body, logs)
	}
	if !strings.HasSuffix(resp.Request.URL.String(), "/page?x=1") {
		t.Fatalf("ended at %s", resp.Request.URL)
	}
}
