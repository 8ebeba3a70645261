package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The upstream application is a process of its own, as in a deployment:
// an nginx answering a short page (one process, no master). What the
// application spends reading the identity headers is then not counted
// as the gateway's CPU, and its share of the two cores is small. With
// -upstream caddy it is a `respond` site of the measured Caddy instead.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log error;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:%[2]d;
		location / {
			default_type text/plain;
			return 200 "hello from the upstream";
		}
	}
}
`

type upstream struct{ cmd *exec.Cmd }

// startNginx runs the upstream on 127.0.0.1:port.
func startNginx(dir string, port int) *upstream {
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port)), 0o600); err != nil {
		fatal("%v", err)
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fatal("nginx: %v (apt-get install nginx)", err)
	}
	u := &upstream{cmd: cmd}
	for range 100 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
	u.stop()
	fatal("nginx did not start")
	return nil
}

// stop ends nginx by its PID.
func (u *upstream) stop() {
	if u != nil && u.cmd.Process != nil {
		u.cmd.Process.Signal(syscall.SIGQUIT)
		u.cmd.Wait()
	}
}
