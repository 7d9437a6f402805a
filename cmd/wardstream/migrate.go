package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	chsink "github.com/wardstream/wardstream/sinks/clickhouse"
)

func cmdMigrate(ctx context.Context, args []string) error {
	fs := newFlags("migrate")
	cfgPath := configFlag(fs)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	print := fs.String("print", "", "print the DDL for a server profile (modern or compat) instead of applying it; no server needed")
	usersXML := fs.String("bi-users-xml", "", "write the BI users of sinks.clickhouse.bi_users as a users.d XML file here (servers without SQL users); default sinks.clickhouse.bi_users_xml")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	scfg, err := chsink.Load(e.cfg)
	if err != nil {
		return err
	}
	db, cluster, sharded := e.cfg.ClickHouse.Database, e.cfg.ClickHouse.Cluster, e.cfg.ClickHouse.Sharded
	if *print != "" {
		p := chschema.Profile(*print)
		if p != chschema.Modern && p != chschema.Compat {
			return fmt.Errorf("%w: --print must be modern or compat, not %q", errUsage, *print)
		}
		for _, q := range chschema.Plan(chschema.Target{Database: db, Cluster: cluster, Sharded: sharded, Caps: chschema.CapsFor(p)}) {
			fmt.Printf("%s;\n\n", q)
		}
		return nil
	}
	var users []chschema.BIUser
	for _, u := range scfg.BIUsers {
		pw := os.Getenv(u.PasswordEnv)
		if pw == "" {
			return fmt.Errorf("sinks.clickhouse.bi_users: %s: env %s is empty", u.Name, u.PasswordEnv)
		}
		users = append(users, chschema.BIUser{Name: u.Name, Tenant: u.Tenant, Password: pw})
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	conn, err := chsink.Open(e.cfg.ClickHouse, scfg.Compression)
	if err != nil {
		return err
	}
	defer conn.Close()
	m := &chschema.Migrator{Conn: chschema.Adapt(conn), Database: db, Cluster: cluster, Sharded: sharded, Log: e.log}
	res, err := m.Migrate(ctx)
	for _, id := range res.Applied {
		fmt.Printf("%s\tapplied\n", id)
	}
	for _, id := range res.Skipped {
		fmt.Printf("%s\tup to date\n", id)
	}
	if err != nil {
		return fmt.Errorf("clickhouse %s database %s: %w", strings.Join(e.cfg.ClickHouse.Addr, ","), db, err)
	}
	if len(users) == 0 {
		return nil
	}
	tg := chschema.Target{Database: db, Cluster: cluster, Sharded: sharded, Caps: chschema.CapsFor(res.Profile)}
	if err := chschema.ApplyBIAccess(ctx, chschema.Adapt(conn), tg, users); err != nil {
		return err
	}
	if tg.Caps.SQLAccess {
		for _, u := range users {
			fmt.Printf("bi user %s\ttenant %s\n", u.Name, u.Tenant)
		}
		return nil
	}
	path := *usersXML
	if path == "" {
		path = scfg.BIUsersXML
	}
	if path == "" {
		return fmt.Errorf("sinks.clickhouse.bi_users: this server (profile %s) has no SQL users; set sinks.clickhouse.bi_users_xml or --bi-users-xml to write a users.d file", res.Profile)
	}
	doc, err := chschema.UsersXML(db, scfg.BINetworks, users)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		return fmt.Errorf("writing bi users xml: %w", err)
	}
	for _, u := range users {
		fmt.Printf("bi user %s\ttenant %s\tdatabase %s\n", u.Name, u.Tenant, chschema.TenantDatabase(db, u.Tenant))
	}
	fmt.Printf("bi users\twritten to %s (copy into the server's users.d; ClickHouse reloads it)\n", path)
	return nil
}
