package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wardstream/wardstream/connectors/api"
)

// cmdToken mints a bearer token with the api role's demo signing key
// (api.auth.demo_key_file), for the demo and for scripts against a local
// stack. Deployments with a real identity provider get tokens from it.
func cmdToken(_ context.Context, args []string) error {
	fs := newFlags("token")
	cfgPath := configFlag(fs)
	role := fs.String("role", api.RoleMedicalStaff, "comma-separated roles: admin, medical_staff, analyst")
	tenant := fs.String("tenant", "", "tenant claim (default: the topology's tenant)")
	user := fs.String("user", "", "subject (default: demo-<first role>)")
	ttl := fs.Duration("ttl", 12*time.Hour, "lifetime of the token")
	url := fs.Bool("url", false, "print the dashboard URL with the token in its fragment instead of the bare token")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	cfg, err := api.LoadConfig(e.cfg)
	if err != nil {
		return err
	}
	if cfg.Auth.DemoKeyFile == "" {
		return fmt.Errorf("api.auth.demo_key_file is not set in %s: tokens come from your identity provider (%s)", e.cfg.Path(), cfg.Auth.JWKSURL)
	}
	key, err := api.LoadOrCreateSigningKey(cfg.Auth.DemoKeyFile)
	if err != nil {
		return err
	}
	var roles []string
	for _, r := range strings.Split(*role, ",") {
		r = strings.TrimSpace(r)
		switch r {
		case api.RoleAdmin, api.RoleMedicalStaff, api.RoleAnalyst:
			roles = append(roles, r)
		case "":
		default:
			return fmt.Errorf("%w: --role %q is not admin, medical_staff or analyst", errUsage, r)
		}
	}
	if len(roles) == 0 {
		return fmt.Errorf("%w: --role names no role", errUsage)
	}
	if *tenant == "" {
		*tenant = e.cfg.Tenant
	}
	if *user == "" {
		*user = "demo-" + roles[0]
	}
	tok, err := key.Mint(cfg.Auth, api.TokenRequest{User: *user, Tenant: *tenant, Roles: roles,
		Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, TTL: *ttl}, time.Now())
	if err != nil {
		return err
	}
	if *url {
		base := cfg.PublicURL
		if base == "" {
			base = "http://" + cfg.Listen
		}
		fmt.Printf("%s/#token=%s\n", strings.TrimSuffix(base, "/"), tok)
		return nil
	}
	fmt.Println(tok)
	return nil
}
