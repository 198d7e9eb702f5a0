package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"

	"github.com/go-sql-driver/mysql"

	"github.com/hotrow/hotrow/binlog"
	"github.com/hotrow/hotrow/proxy"
	"github.com/hotrow/hotrow/schema"
)

// startFeed runs the order feed beside the proxy when --binlog-sink names
// a sink. What the --binlog-* flags leave unset comes from the proxy: the
// source is the backend with the merge user's credentials, the hot rules
// and the meta schema are the proxy's. stop ends the feed and waits for it;
// events not yet acknowledged are sent again by the next run. feed is the
// consumer, for the admin port and the metrics; nil when no feed runs.
func startFeed(ctx context.Context, fs *flag.FlagSet, pc proxy.Config, build func() (binlog.Config, error), log *slog.Logger) (feed *binlog.Consumer, stop func(), err error) {
	cfg, err := build()
	if err != nil || len(cfg.Sinks) == 0 {
		return nil, func() {}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.SourceDSN == "" {
		u, ok := pc.MergeAccount()
		if !ok {
			return nil, nil, errors.New("--binlog-sink: no --binlog-source and no merge user to read the binlog with")
		}
		dsn := mysql.NewConfig()
		dsn.User, dsn.Passwd, dsn.Net, dsn.Addr = u.Name, u.Password, "tcp", pc.Backend
		cfg.SourceDSN = dsn.FormatDSN()
	}
	if len(cfg.HotRules) == 0 {
		for _, s := range pc.HotRules {
			r, err := schema.ParseRule(s)
			if err != nil {
				return nil, nil, err
			}
			cfg.HotRules = append(cfg.HotRules, r)
		}
	}
	if !set["binlog-meta-schema"] && pc.MetaSchema != "" {
		cfg.MetaSchema = pc.MetaSchema
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	c, err := binlog.NewConsumer(cfg, log.With("component", "binlog"))
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("order feed stopped: the proxy goes on without it", "err", err)
		}
	}()
	return c, func() {
		cancel()
		<-done
		_ = c.Close()
	}, nil
}
