package eventbus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

func TestPlanBroker(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		name       string
		module     string
		cfg        *eventbusv1.BrokerConfig
		getenv     func(string) string
		wantTarget string
		wantURLs   string
		wantReason string
		wantErr    string
	}{
		{name: "empty config runs embedded", module: "bus", cfg: &eventbusv1.BrokerConfig{}, wantTarget: TargetEmbedded},
		{name: "dsn", module: "bus", cfg: &eventbusv1.BrokerConfig{Dsn: "nats://a:4222"}, wantTarget: TargetSelfHosted, wantURLs: "nats://a:4222"},
		{name: "url and urls joined", module: "bus", cfg: &eventbusv1.BrokerConfig{Url: "nats://a:1", Urls: []string{"nats://b:2, nats://c:3"}}, wantTarget: TargetSelfHosted, wantURLs: "nats://a:1,nats://b:2,nats://c:3"},
		{name: "module env var", module: "order-bus", cfg: &eventbusv1.BrokerConfig{}, getenv: env("EVENTBUS_ORDER_BUS_URI", "nats://m:1", "NATS_URL", "nats://n:1"), wantTarget: TargetSelfHosted, wantURLs: "nats://m:1"},
		{name: "NATS_URL", module: "bus", cfg: &eventbusv1.BrokerConfig{}, getenv: env("NATS_URL", "nats://n:1"), wantTarget: TargetSelfHosted, wantURLs: "nats://n:1"},
		{name: "config beats env", module: "bus", cfg: &eventbusv1.BrokerConfig{Dsn: "nats://c:1"}, getenv: env("NATS_URL", "nats://n:1"), wantTarget: TargetSelfHosted, wantURLs: "nats://c:1"},
		{name: "kubernetes with url", module: "bus", cfg: &eventbusv1.BrokerConfig{Provider: "NATS", DeployTarget: "kubernetes", Dsn: "nats://k:1"}, wantTarget: TargetKubernetes, wantURLs: "nats://k:1"},
		{name: "unknown target lists valid ones", module: "bus", cfg: &eventbusv1.BrokerConfig{DeployTarget: "mars"}, wantErr: "valid targets: aws.ecs, aws.eks, digitalocean.app_platform, embedded, kubernetes, self_hosted"},
		{name: "unknown provider", module: "bus", cfg: &eventbusv1.BrokerConfig{Provider: "kafka"}, wantErr: `provider "kafka" is not supported; use "nats" or "postgres"`},
		{name: "postgres setting on nats", module: "bus", cfg: &eventbusv1.BrokerConfig{Schema: "app"}, wantErr: "schema applies to provider postgres only"},
		{name: "notify on nats", module: "bus", cfg: &eventbusv1.BrokerConfig{Notify: proto.Bool(true)}, wantErr: "notify applies to provider postgres only"},
		{name: "max_payload on nats", module: "bus", cfg: &eventbusv1.BrokerConfig{MaxPayload: 1}, wantErr: "embedded.max_payload"},
		{name: "postgres DSN on nats", module: "bus", cfg: &eventbusv1.BrokerConfig{}, getenv: env("EVENTBUS_BUS_URI", "postgres://u:secret@db/app"), wantErr: "postgres://u:redacted@db/app is a PostgreSQL DSN, and this broker's provider is nats: set provider: postgres"},
		{name: "embedded with url", module: "bus", cfg: &eventbusv1.BrokerConfig{DeployTarget: "embedded", Dsn: "nats://x:1"}, wantErr: "deploy_target embedded runs the broker in the plugin process"},
		{name: "external target without url", module: "bus", cfg: &eventbusv1.BrokerConfig{DeployTarget: "aws.ecs"}, wantErr: "EVENTBUS_BUS_URI"},
		{name: "embedded block beats NATS_URL", module: "bus", cfg: withEmbedded(&eventbusv1.BrokerConfig{}), getenv: env("NATS_URL", "nats://n:1"), wantTarget: TargetEmbedded, wantReason: "embedded block in the config (NATS_URL is set, but the config decides)"},
		{name: "empty embedded block beats NATS_URL", module: "bus", cfg: &eventbusv1.BrokerConfig{Embedded: &eventbusv1.EmbeddedConfig{}}, getenv: env("NATS_URL", "nats://n:1"), wantTarget: TargetEmbedded},
		{name: "module env var beats embedded block", module: "bus", cfg: withEmbedded(&eventbusv1.BrokerConfig{}), getenv: env("EVENTBUS_BUS_URI", "nats://m:1", "NATS_URL", "nats://n:1"), wantTarget: TargetSelfHosted, wantURLs: "nats://m:1", wantReason: "EVENTBUS_BUS_URI is set (it overrides the embedded block of the config)"},
		{name: "deploy_target embedded beats env", module: "bus", cfg: &eventbusv1.BrokerConfig{DeployTarget: "embedded"}, getenv: env("EVENTBUS_BUS_URI", "nats://m:1", "NATS_URL", "nats://n:1"), wantTarget: TargetEmbedded, wantReason: "deploy_target embedded in the config"},
		{name: "config url beats module env var", module: "bus", cfg: &eventbusv1.BrokerConfig{Url: "nats://c:1"}, getenv: env("EVENTBUS_BUS_URI", "nats://m:1"), wantTarget: TargetSelfHosted, wantURLs: "nats://c:1", wantReason: "dsn/url/urls in the config"},
		{name: "NATS_URL reason", module: "bus", cfg: &eventbusv1.BrokerConfig{}, getenv: env("NATS_URL", "nats://n:1"), wantTarget: TargetSelfHosted, wantURLs: "nats://n:1", wantReason: "NATS_URL is set"},
		{name: "default reason", module: "bus", cfg: &eventbusv1.BrokerConfig{}, wantTarget: TargetEmbedded, wantReason: "nothing names an external broker (dsn, url, urls, EVENTBUS_BUS_URI, NATS_URL)"},
		{name: "blank env vars name nothing", module: "bus", cfg: &eventbusv1.BrokerConfig{}, getenv: env("EVENTBUS_BUS_URI", " ", "NATS_URL", " "), wantTarget: TargetEmbedded},
		{name: "url and embedded block", module: "bus", cfg: withEmbedded(&eventbusv1.BrokerConfig{Dsn: "nats://x:1"}), wantErr: "keep one of them"},
		{name: "embedded block with an external target", module: "bus", cfg: withEmbedded(&eventbusv1.BrokerConfig{DeployTarget: "kubernetes"}), getenv: env("NATS_URL", "nats://n:1"), wantErr: "set deploy_target embedded"},
		{name: "external target takes NATS_URL", module: "bus", cfg: &eventbusv1.BrokerConfig{DeployTarget: "kubernetes"}, getenv: env("NATS_URL", "nats://n:1"), wantTarget: TargetKubernetes, wantURLs: "nats://n:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			plan, err := planBroker(c.module, c.cfg, "", c.getenv)
			if c.wantErr != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want ErrConfig containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.target != c.wantTarget || strings.Join(plan.urls, ",") != c.wantURLs {
				t.Fatalf("plan = %s %v, want %s %s", plan.target, plan.urls, c.wantTarget, c.wantURLs)
			}
			if plan.reason == "" || (c.wantReason != "" && plan.reason != c.wantReason) {
				t.Fatalf("reason = %q, want %q", plan.reason, c.wantReason)
			}
		})
	}
}

// TestPlanPostgres covers the postgres provider: where its DSN comes from,
// its settings, and the NATS settings it refuses.
func TestPlanPostgres(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	pg := func(cfg *eventbusv1.BrokerConfig) *eventbusv1.BrokerConfig {
		if cfg.Provider == "" {
			cfg.Provider = "postgres"
		}
		return cfg
	}
	const dsn = "postgres://app:secret@db:5432/app"
	cases := []struct {
		name       string
		cfg        *eventbusv1.BrokerConfig
		getenv     func(string) string
		wantDSN    string
		wantReason string
		wantTarget string
		wantErr    string
	}{
		{name: "dsn", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn}), wantDSN: dsn, wantReason: "dsn/url in the config", wantTarget: TargetSelfHosted},
		{name: "url", cfg: pg(&eventbusv1.BrokerConfig{Url: dsn}), wantDSN: dsn, wantReason: "dsn/url in the config"},
		{name: "dsn and url alike", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, Url: dsn}), wantDSN: dsn},
		{name: "config beats env", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn}), getenv: env("EVENTBUS_BUS_URI", "postgres://m/x", "DATABASE_URL", "postgres://d/x"), wantDSN: dsn},
		{name: "module env var", cfg: pg(&eventbusv1.BrokerConfig{}), getenv: env("EVENTBUS_BUS_URI", "postgres://m/x", "DATABASE_URL", "postgres://d/x"), wantDSN: "postgres://m/x", wantReason: "EVENTBUS_BUS_URI is set"},
		{name: "DATABASE_URL", cfg: pg(&eventbusv1.BrokerConfig{}), getenv: env("DATABASE_URL", "postgres://d/x", "NATS_URL", "nats://n:1"), wantDSN: "postgres://d/x", wantReason: "DATABASE_URL is set"},
		{name: "pgchannel and its fields", cfg: &eventbusv1.BrokerConfig{Provider: "pgchannel", Dsn: dsn, BrokerTarget: "in_process", MaxConns: 4, PollInterval: durationpb.New(time.Second)}, wantDSN: dsn},
		{name: "key=value DSN", cfg: pg(&eventbusv1.BrokerConfig{Dsn: "host=db dbname=app password=secret"}), wantDSN: "host=db dbname=app password=secret"},
		{name: "kubernetes", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, DeployTarget: "kubernetes"}), wantDSN: dsn, wantTarget: TargetKubernetes},

		{name: "no DSN anywhere", cfg: pg(&eventbusv1.BrokerConfig{}), getenv: env("NATS_URL", "nats://n:1"), wantErr: "set dsn (or url), or EVENTBUS_BUS_URI, or DATABASE_URL"},
		{name: "dsn and url differ", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, Url: "postgres://other/x"}), wantErr: "dsn and url both name the database (postgres://app:redacted@db:5432/app, postgres://other/x)"},
		{name: "deploy_target embedded", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, DeployTarget: "embedded"}), wantErr: "deploy_target embedded runs a NATS server"},
		{name: "unknown deploy_target", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, DeployTarget: "mars"}), wantErr: "valid targets: aws.ecs, aws.eks, digitalocean.app_platform, kubernetes, self_hosted"},
		{name: "embedded block", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, Embedded: &eventbusv1.EmbeddedConfig{}}), wantErr: "embedded configures the embedded NATS server"},
		{name: "urls", cfg: pg(&eventbusv1.BrokerConfig{Urls: []string{dsn}}), wantErr: "urls lists NATS servers"},
		{name: "credentials", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, Credentials: &eventbusv1.Credentials{User: "u"}}), wantErr: "credentials are NATS credentials"},
		{name: "broker_target", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, BrokerTarget: "sidecar"}), wantErr: `broker_target "sidecar"`},
		{name: "NATS URL", cfg: pg(&eventbusv1.BrokerConfig{Dsn: "nats://127.0.0.1:4222"}), wantErr: "dsn: scheme \"nats\" must be postgres or postgresql (DSN from dsn/url in the config)"},
		{name: "bad DSN hides its password", cfg: pg(&eventbusv1.BrokerConfig{}), getenv: env("DATABASE_URL", "postgres://app:secret@db:port/app"), wantErr: "(DSN from DATABASE_URL is set)"},
		{name: "schema", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, Schema: "Bad-Schema"}), wantErr: "schema:"},
		{name: "max_conns", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, MaxConns: 1}), wantErr: "max_conns:"},
		{name: "max_payload", cfg: pg(&eventbusv1.BrokerConfig{Dsn: dsn, MaxPayload: -1}), wantErr: "max_payload -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			plan, err := planBroker("bus", c.cfg, "/apps/x", c.getenv)
			if c.wantErr != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want ErrConfig containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.provider != providerPostgres || plan.postgres.DSN != c.wantDSN {
				t.Fatalf("plan = %s %q, want postgres %q", plan.provider, plan.postgres.DSN, c.wantDSN)
			}
			if c.wantReason != "" && plan.reason != c.wantReason {
				t.Fatalf("reason = %q, want %q", plan.reason, c.wantReason)
			}
			if c.wantTarget != "" && plan.target != c.wantTarget {
				t.Fatalf("target = %q, want %q", plan.target, c.wantTarget)
			}
		})
	}
}

// TestPlanPostgresSettings: the reference's pgchannel fields and the
// postgres ones reach the backend's configuration.
func TestPlanPostgresSettings(t *testing.T) {
	t.Parallel()
	plan, err := planBroker("orders-db", &eventbusv1.BrokerConfig{
		Provider: "PgChannel", Dsn: "postgres://db/app", PollInterval: durationpb.New(250 * time.Millisecond), MaxConns: 8,
		BrokerTarget: "in_process", Schema: "orders_bus", Notify: proto.Bool(false), MaxPayload: 4 << 20,
	}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pc := plan.postgres
	if pc.PollInterval != 250*time.Millisecond || pc.MaxConns != 8 || pc.Schema != "orders_bus" || !pc.PollOnly ||
		pc.ApplicationName != "orders-db" || plan.pgMaxPayload != 4<<20 {
		t.Fatalf("plan = %+v, max payload %d", pc, plan.pgMaxPayload)
	}
	plan, err = planBroker("bus", &eventbusv1.BrokerConfig{Provider: "postgres", Dsn: "postgres://db/app", Notify: proto.Bool(true), ConnectionName: "worker-1"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.postgres.PollOnly || plan.postgres.ApplicationName != "worker-1" {
		t.Fatalf("notify: true, connection_name worker-1: %+v", plan.postgres)
	}
}

func withEmbedded(cfg *eventbusv1.BrokerConfig) *eventbusv1.BrokerConfig {
	cfg.Embedded = &eventbusv1.EmbeddedConfig{Port: 4333}
	return cfg
}

func TestPlanBrokerEmbeddedDefaults(t *testing.T) {
	t.Parallel()
	plan, err := planBroker("bus", &eventbusv1.BrokerConfig{}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := plan.embedded
	if e.Host != "127.0.0.1" || e.Port != 4222 || e.StoreDir != "./data/eventbus" {
		t.Fatalf("embedded defaults = %+v", e)
	}
	plan, err = planBroker("bus", &eventbusv1.BrokerConfig{}, "/apps/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.embedded.StoreDir; got != "/apps/orders/data/eventbus" {
		t.Fatalf("store_dir beside the app config = %q", got)
	}
	abs := &eventbusv1.BrokerConfig{Embedded: &eventbusv1.EmbeddedConfig{StoreDir: "/var/lib/eventbus"}}
	if plan, _ = planBroker("bus", abs, "/apps/orders", nil); plan.embedded.StoreDir != "/var/lib/eventbus" {
		t.Fatalf("absolute store_dir moved: %q", plan.embedded.StoreDir)
	}
}

func TestURLEnvVar(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"bus":           "EVENTBUS_BUS_URI",
		"order-events":  "EVENTBUS_ORDER_EVENTS_URI",
		"infra.events2": "EVENTBUS_INFRA_EVENTS2_URI",
	} {
		if got := URLEnvVar(in); got != want {
			t.Errorf("URLEnvVar(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	def := &subscribeTrigger{}
	listed := &subscribeTrigger{settings: consumerSettings{Backoff: []time.Duration{time.Second, 5 * time.Second}}}
	cases := []struct {
		tr       *subscribeTrigger
		delivery int
		want     time.Duration
	}{
		{def, 1, time.Second}, {def, 2, 2 * time.Second}, {def, 3, 4 * time.Second}, {def, 7, time.Minute}, {def, 100, time.Minute},
		{listed, 1, time.Second}, {listed, 2, 5 * time.Second}, {listed, 9, 5 * time.Second},
	}
	for _, c := range cases {
		if got := c.tr.backoff(c.delivery); got != c.want {
			t.Errorf("backoff(%d) = %v, want %v", c.delivery, got, c.want)
		}
	}
}
