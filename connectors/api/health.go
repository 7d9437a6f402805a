package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/wardstream/wardstream/internal/runtime"
)

// PipelineHealth is the pipeline's state as the API last polled it. It
// holds counts only (no tenant data), so every role may read it; its error
// texts are generic (the internal errors behind them are logged).
type PipelineHealth struct {
	CheckedAt time.Time `json:"checkedAt"`
	// Kafka and ClickHouse say whether the last poll reached them.
	Kafka      Component `json:"kafka"`
	ClickHouse Component `json:"clickhouse"`
	// Groups is the consumer lag of each processing group.
	Groups []GroupLag `json:"groups"`
	// Topics are the watched topics' end offsets and produce rates.
	Topics []TopicRate `json:"topics"`
	// Roles is the readiness of each role: those in this process and
	// those configured under api.roles.
	Roles []RoleState `json:"roles"`
	// TotalPerSecond is the summed produce rate of the watched topics.
	TotalPerSecond float64 `json:"totalPerSecond"`
	// TotalLag is the summed lag of the groups.
	TotalLag int64 `json:"totalLag"`
}

// Component is the reachability of one dependency.
type Component struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// GroupLag is one consumer group's lag.
type GroupLag struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
	Lag     int64  `json:"lag"`
	Error   string `json:"error,omitempty"`
}

// TopicRate is one topic's end offset (summed over partitions) and the
// rate it grew at since the previous poll.
type TopicRate struct {
	Topic     string  `json:"topic"`
	EndOffset int64   `json:"endOffset"`
	PerSecond float64 `json:"perSecond"`
}

// RoleState is one role's readiness.
type RoleState struct {
	Role  string `json:"role"`
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// monitor polls Kafka, the store and the roles every interval; readers get
// the last result without waiting on the network.
type monitor struct {
	adm    *kadm.Client
	store  Store
	health *runtime.Health
	groups []string
	topics []string
	roles  map[string]string
	now    func() time.Time
	log    *slog.Logger
	client *http.Client

	mu   sync.Mutex
	last PipelineHealth
	prev map[string]int64
	at   time.Time
	errs map[string]string // the failing checks' internal errors, last logged
}

func newMonitor(adm *kadm.Client, st Store, h *runtime.Health, groups, topics []string, roles map[string]string, now func() time.Time, log *slog.Logger) *monitor {
	return &monitor{adm: adm, store: st, health: h, groups: groups, topics: topics, roles: roles, now: now, log: log,
		client: &http.Client{Timeout: 2 * time.Second}, errs: map[string]string{}}
}

// hide logs check's internal error (when it differs from the one logged
// last) and returns shown, the text pipeline health carries instead:
// every role reads it, and internal errors (server addresses, user names,
// driver messages) are logged, not shown.
func (m *monitor) hide(check string, err error, shown string) string {
	msg := err.Error()
	m.mu.Lock()
	changed := m.errs[check] != msg
	m.errs[check] = msg
	m.mu.Unlock()
	if changed {
		m.log.Warn("pipeline health check failing", "check", check, "err", err)
	}
	return shown
}

// passed forgets check's logged error, so that its next failure is logged.
func (m *monitor) passed(check string) {
	m.mu.Lock()
	delete(m.errs, check)
	m.mu.Unlock()
}

func (m *monitor) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		m.poll(pctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// snapshot returns the last poll; before the first one it polls inline.
func (m *monitor) snapshot() PipelineHealth {
	m.mu.Lock()
	polled := !m.last.CheckedAt.IsZero()
	last := m.last
	m.mu.Unlock()
	if polled {
		return last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.poll(ctx)
}

func (m *monitor) poll(ctx context.Context) PipelineHealth {
	now := m.now()
	h := PipelineHealth{CheckedAt: now, Groups: []GroupLag{}, Topics: []TopicRate{}, Roles: []RoleState{}}
	if err := m.store.Ping(ctx); err != nil {
		h.ClickHouse = Component{Error: m.hide("clickhouse", err, "unreachable")}
	} else {
		m.passed("clickhouse")
		h.ClickHouse = Component{OK: true}
	}
	ends := map[string]int64{}
	if m.adm == nil {
		h.Kafka = Component{Error: "no kafka admin client configured"}
	} else {
		h.Kafka = Component{OK: true}
		// kadm reuses the variadic slice it is given: pass copies.
		offs, err := m.adm.ListEndOffsets(ctx, slices.Clone(m.topics)...)
		if err != nil {
			h.Kafka = Component{Error: m.hide("kafka end offsets", err, "listing end offsets failed")}
		} else {
			m.passed("kafka end offsets")
			offs.Each(func(o kadm.ListedOffset) {
				if o.Err == nil {
					ends[o.Topic] += o.Offset
				}
			})
		}
		if len(m.groups) > 0 && h.Kafka.OK {
			lags, err := m.adm.Lag(ctx, slices.Clone(m.groups)...)
			if err != nil {
				h.Kafka = Component{Error: m.hide("kafka group lag", err, "describing group lag failed")}
			} else {
				m.passed("kafka group lag")
			}
			for _, g := range m.groups {
				l, ok := lags[g]
				if !ok {
					continue
				}
				gl := GroupLag{Group: g, State: l.State, Members: len(l.Members)}
				if err := l.Error(); errors.Is(err, kerr.GroupIDNotFound) || (err == nil && l.State == "Dead") {
					// The group's role has never run (or its group expired).
					gl.State = "absent"
				} else if err != nil {
					gl.Error = m.hide("group "+g, err, "lag unavailable")
				} else {
					m.passed("group " + g)
					gl.Lag = l.Lag.Total()
				}
				h.TotalLag += gl.Lag
				h.Groups = append(h.Groups, gl)
			}
		}
	}
	m.mu.Lock()
	el := now.Sub(m.at).Seconds()
	for _, t := range m.topics {
		end, ok := ends[t]
		if !ok {
			continue
		}
		tr := TopicRate{Topic: t, EndOffset: end}
		if p, seen := m.prev[t]; seen && el > 0 && end >= p {
			tr.PerSecond = float64(end-p) / el
		}
		h.TotalPerSecond += tr.PerSecond
		h.Topics = append(h.Topics, tr)
	}
	m.mu.Unlock()
	h.Roles = m.roleStates(ctx)
	m.mu.Lock()
	if len(ends) > 0 {
		m.prev, m.at = ends, now
	}
	m.last = h
	m.mu.Unlock()
	return h
}

func (m *monitor) roleStates(ctx context.Context) []RoleState {
	out := []RoleState{}
	if m.health != nil {
		// runtime.Health only reports the failing checks, joined.
		rs := RoleState{Role: "this-process"}
		if err := m.health.Ready(); err != nil {
			rs.Error = m.hide("this-process", err, "not ready: "+strings.Join(failingChecks(err), ", "))
		} else {
			m.passed("this-process")
			rs.Ready = true
		}
		out = append(out, rs)
	}
	for name, url := range m.roles {
		rs := RoleState{Role: name}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err == nil {
			var resp *http.Response
			if resp, err = m.client.Do(req); err == nil {
				resp.Body.Close()
				rs.Ready = resp.StatusCode == http.StatusOK
				if !rs.Ready {
					rs.Error = fmt.Sprintf("readiness HTTP %d", resp.StatusCode)
				}
			}
		}
		if err != nil {
			rs.Error = m.hide("role "+name, err, "readiness check failed")
		} else {
			m.passed("role " + name)
		}
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Role < out[j].Role })
	return out
}

// failingChecks returns the names of the failing checks in an error of
// runtime.Health.Ready (one "name: error" per check, joined).
func failingChecks(err error) []string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var names []string
	for _, e := range errs {
		if name, _, ok := strings.Cut(e.Error(), ": "); ok {
			names = append(names, name)
		}
	}
	return names
}
