package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/internal/localdb"
)

// EnvOptions say where the two sides of a run come from.
type EnvOptions struct {
	// DirectDSN names an existing server; empty: provision one, locally
	// (internal/localdb) or, with Testcontainers, in a container.
	DirectDSN string
	// ProxyDSN names a running proxy in front of that server; empty: start
	// `ProxyBinary proxy` as a child against the direct server.
	ProxyDSN string

	Testcontainers bool
	// Image is the container image (DefaultImage when empty).
	Image string
	// Pull allows pulling Image from a registry when it is not present.
	Pull bool

	// ProxyBinary is the hotrow executable that runs the proxy child.
	ProxyBinary string
	// ProxyArgs are extra flags for the proxy child.
	ProxyArgs []string
	// Database is the bench database, named in the proxy's hot rule.
	Database string
	// Relay, when set (RelayAuto, RelayHAProxy, RelayBuiltin), starts a
	// plain TCP relay in front of the server for the relay side.
	Relay string
	// NoProxy skips the proxy (a run without the proxy side).
	NoProxy bool
}

// Env is a provisioned pair of sides; Close tears down what it started.
type Env struct {
	Direct, Relay, Proxy Target
	// RelayName says which relay runs (empty: none).
	RelayName string
	// DBPID is the local database server's pid, 0 when not local.
	DBPID int
	// Proxy is the proxy child, nil when ProxyDSN was given.
	ProxyProcess *ProxyProcess

	closers []func()
}

// Provision makes the database and the proxy available as opts says.
func Provision(ctx context.Context, opts EnvOptions, log *slog.Logger) (_ *Env, err error) {
	// Not the named result: a failure returns nil, and the deferred Close
	// must still reach what was started.
	env := &Env{}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()
	switch {
	case opts.DirectDSN != "":
		env.Direct.DSN = opts.DirectDSN
	case opts.Testcontainers:
		image := opts.Image
		if image == "" {
			image = DefaultImage
		}
		if err := CheckImage(ctx, image, opts.Pull); err != nil {
			return nil, err
		}
		c, err := StartContainer(ctx, image, log)
		if err != nil {
			return nil, err
		}
		env.closers = append(env.closers, func() { _ = c.Terminate(context.Background()) })
		env.Direct.DSN, env.DBPID = c.DSN(), c.PID
	default:
		log.Info("starting a local MariaDB (durable settings)")
		inst, err := localdb.Start(ctx, localdb.Options{})
		if err != nil {
			return nil, err
		}
		env.closers = append(env.closers, inst.Stop)
		env.Direct.DSN, env.DBPID = inst.DSN(""), inst.PID()
		log.Info("local MariaDB ready", "addr", inst.Addr, "pid", env.DBPID)
	}
	cfg, err := mysql.ParseDSN(env.Direct.DSN)
	if err != nil {
		return nil, fmt.Errorf("direct DSN: %w", err)
	}
	if opts.Relay != "" {
		if cfg.Net != "tcp" {
			return nil, fmt.Errorf("bench: the relay side needs a TCP server address, the direct DSN has %s %s", cfg.Net, cfg.Addr)
		}
		r, err := StartRelay(ctx, opts.Relay, cfg.Addr, log)
		if err != nil {
			return nil, err
		}
		env.closers = append(env.closers, func() {
			if err := r.Stop(); err != nil {
				log.Warn("stopping relay", "err", err)
			}
		})
		rc := cfg.Clone()
		rc.Net, rc.Addr = "tcp", r.Addr
		env.Relay = Target{DSN: rc.FormatDSN(), PID: r.PID()}
		env.RelayName = r.Name
	}
	switch {
	case opts.NoProxy:
		return env, nil
	case opts.ProxyDSN != "":
		env.Proxy.DSN = opts.ProxyDSN
		return env, nil
	case opts.ProxyBinary == "":
		return nil, errors.New("bench: no proxy DSN and no hotrow binary to start one")
	}
	p, err := StartProxy(ctx, ProxyOptions{
		Binary:    opts.ProxyBinary,
		Backend:   cfg.Addr,
		User:      cfg.User,
		Password:  cfg.Passwd,
		HotRules:  []string{HotRule(opts.Database)},
		ExtraArgs: opts.ProxyArgs,
	}, log)
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, func() {
		if err := p.Stop(); err != nil {
			log.Warn("stopping proxy", "err", err)
		}
	})
	env.ProxyProcess = p
	env.Proxy = p.Target(cfg.User, cfg.Passwd)
	return env, nil
}

// Close stops the proxy and the database it started, in reverse order.
// It is idempotent.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}
