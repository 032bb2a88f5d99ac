package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// step.http_call (engine-pipelines.md §3.13): a real HTTP request with
// net/http; OAuth2 client credentials tokens are cached per Runner.

type oauthConfig struct {
	tokenURL, clientID, clientSecret string
	scopes                           []string
}

func (o *oauthConfig) key() string {
	return o.tokenURL + "\x00" + o.clientID + "\x00" + o.clientSecret + "\x00" + strings.Join(o.scopes, " ")
}

type httpCallStep struct {
	r             *Runner
	name          string
	url           string
	method        string
	headers       map[string]string
	body          map[string]any
	bodyFrom      string
	timeout       time.Duration
	errorOnStatus bool
	auth          *oauthConfig
}

func newHTTPCallStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &httpCallStep{r: b.r, name: name, method: "GET", timeout: 30 * time.Second, errorOnStatus: true}
	s.url, _ = cfg["url"].(string)
	if s.url == "" {
		return nil, fmt.Errorf("http_call step %q: 'url' is required", name)
	}
	if m, _ := cfg["method"].(string); m != "" {
		s.method = m
	}
	if h, ok := cfg["headers"].(map[string]any); ok {
		s.headers = map[string]string{}
		for k, v := range h {
			if str, ok := v.(string); ok {
				s.headers[k] = str
			}
		}
	}
	s.body, _ = cfg["body"].(map[string]any)
	s.bodyFrom, _ = cfg["body_from"].(string)
	if t, ok := cfg["timeout"].(string); ok && t != "" {
		if d, err := time.ParseDuration(t); err == nil {
			s.timeout = d
		}
	}
	if e, ok := cfg["error_on_status"].(bool); ok {
		s.errorOnStatus = e
	}
	if c, _ := cfg["client"].(string); c != "" {
		return nil, fmt.Errorf("http_call step %q: client %q names an http.client module, an engine built-in not available in eventbus run", name, c)
	}
	authCfg, ok := cfg["auth"].(map[string]any)
	if !ok {
		authCfg, ok = cfg["oauth2"].(map[string]any)
	}
	if ok {
		typ, _ := authCfg["type"].(string)
		if typ == "oauth2_client_credentials" || typ == "" {
			a := &oauthConfig{}
			a.tokenURL, _ = authCfg["token_url"].(string)
			a.clientID, _ = authCfg["client_id"].(string)
			a.clientSecret, _ = authCfg["client_secret"].(string)
			for field, v := range map[string]string{"token_url": a.tokenURL, "client_id": a.clientID, "client_secret": a.clientSecret} {
				if v == "" {
					return nil, fmt.Errorf("http_call step %q: auth.%s is required for oauth2_client_credentials", name, field)
				}
			}
			if list, ok := authCfg["scopes"].([]any); ok {
				for _, sc := range list {
					if str, ok := sc.(string); ok {
						a.scopes = append(a.scopes, str)
					}
				}
			}
			s.auth = a
		}
	}
	return s, nil
}

func (s *httpCallStep) Name() string { return s.name }

// bodyReader is the request body: body resolved and JSON-encoded;
// body_from (a string or []byte raw, nil none, else JSON); without
// either, current as JSON unless the method is GET or HEAD. json tells
// whether to send Content-Type: application/json.
func (s *httpCallStep) bodyReader(pc *runContext) (r io.Reader, isJSON bool, err error) {
	switch {
	case s.body != nil:
		resolved, err := s.r.tmpl.resolveMap(s.body, pc)
		if err != nil {
			return nil, false, wrapText(fmt.Sprintf("http_call step %q: failed to resolve body", s.name), err)
		}
		b, err := json.Marshal(resolved)
		if err != nil {
			return nil, false, wrapText(fmt.Sprintf("http_call step %q: failed to marshal body", s.name), err)
		}
		return bytes.NewReader(b), true, nil
	case s.bodyFrom != "":
		switch v := resolvePath(s.bodyFrom, pc).(type) {
		case nil:
			return nil, false, nil
		case string:
			return strings.NewReader(v), false, nil
		case []byte:
			return bytes.NewReader(v), false, nil
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, false, wrapText(fmt.Sprintf("http_call step %q: failed to marshal body", s.name), err)
			}
			return bytes.NewReader(b), true, nil
		}
	case s.method != "GET" && s.method != "HEAD":
		b, err := json.Marshal(pc.current)
		if err != nil {
			return nil, false, wrapText(fmt.Sprintf("http_call step %q: failed to marshal current data", s.name), err)
		}
		return bytes.NewReader(b), true, nil
	}
	return nil, false, nil
}

func (s *httpCallStep) request(ctx context.Context, u string, pc *runContext, token string) (*http.Request, error) {
	body, isJSON, err := s.bodyReader(pc)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, s.method, u, body)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("http_call step %q: failed to create request", s.name), err)
	}
	if isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range s.headers {
		if resolved, err := s.r.tmpl.resolve(v, pc); err == nil {
			req.Header.Set(k, resolved)
		} else {
			req.Header.Set(k, v)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

func (s *httpCallStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	u, err := s.r.tmpl.resolve(s.url, pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("http_call step %q: failed to resolve url", s.name), err)
	}
	var token string
	var entry *oauthEntry
	if s.auth != nil {
		entry = s.r.oauth.entry(s.auth.key())
		if token, err = entry.get(ctx, s.fetchToken); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	status, resp, body, err := s.do(ctx, u, pc, token)
	if err != nil {
		return nil, err
	}
	if status == http.StatusUnauthorized && entry != nil {
		entry.invalidate()
		var ttl time.Duration
		if token, ttl, err = s.fetchToken(ctx); err != nil {
			return nil, err
		}
		entry.set(token, ttl)
		if status, resp, body, err = s.do(ctx, u, pc, token); err != nil {
			return nil, err
		}
	}
	if s.errorOnStatus && status >= 400 {
		return nil, fmt.Errorf("http_call step %q: HTTP %d: %s", s.name, status, body)
	}
	headers := make(map[string]any, len(resp.Header))
	for k, vs := range resp.Header {
		if len(vs) == 1 {
			headers[k] = vs[0]
			continue
		}
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		headers[k] = list
	}
	out := map[string]any{
		"status_code": status,
		"status":      resp.Status,
		"headers":     headers,
		"elapsed_ms":  time.Since(start).Milliseconds(),
	}
	var parsed any
	if json.Unmarshal(body, &parsed) == nil {
		out["body"] = parsed
	} else {
		out["body"] = string(body)
	}
	return &stepResult{output: out}, nil
}

func (s *httpCallStep) do(ctx context.Context, u string, pc *runContext, token string) (int, *http.Response, []byte, error) {
	req, err := s.request(ctx, u, pc, token)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := s.r.httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, wrapText(fmt.Sprintf("http_call step %q: request failed", s.name), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, wrapText(fmt.Sprintf("http_call step %q: failed to read response", s.name), err)
	}
	return resp.StatusCode, resp, body, nil
}

// fetchToken asks the token endpoint for a client credentials token and
// says how long to keep it: expires_in (default an hour) less 10s.
func (s *httpCallStep) fetchToken(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.auth.clientID}, "client_secret": {s.auth.clientSecret}}
	if len(s.auth.scopes) > 0 {
		form.Set("scope", strings.Join(s.auth.scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.auth.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, wrapText(fmt.Sprintf("http_call step %q: failed to create token request", s.name), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.r.httpClient.Do(req)
	if err != nil {
		return "", 0, wrapText(fmt.Sprintf("http_call step %q: token request failed", s.name), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, wrapText(fmt.Sprintf("http_call step %q: failed to read token response", s.name), err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("http_call step %q: token endpoint returned HTTP %d: %s", s.name, resp.StatusCode, body)
	}
	var tok struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", 0, wrapText(fmt.Sprintf("http_call step %q: failed to parse token response", s.name), err)
	}
	if tok.AccessToken == "" {
		return "", 0, fmt.Errorf("http_call step %q: token response missing access_token", s.name)
	}
	ttl := time.Duration(tok.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = time.Hour
	}
	if ttl > 10*time.Second {
		ttl -= 10 * time.Second
	}
	return tok.AccessToken, ttl, nil
}

// oauthCache holds one token entry per set of credentials.
type oauthCache struct {
	mu      sync.Mutex
	entries map[string]*oauthEntry
}

func (c *oauthCache) entry(key string) *oauthEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*oauthEntry{}
	}
	e := c.entries[key]
	if e == nil {
		e = &oauthEntry{}
		c.entries[key] = e
	}
	return e
}

// oauthEntry is a cached token; concurrent fetches wait for one.
type oauthEntry struct {
	mu      sync.Mutex
	token   string
	expires time.Time
}

func (e *oauthEntry) get(ctx context.Context, fetch func(context.Context) (string, time.Duration, error)) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token != "" && time.Now().Before(e.expires) {
		return e.token, nil
	}
	t, ttl, err := fetch(ctx)
	if err != nil {
		return "", err
	}
	e.token, e.expires = t, time.Now().Add(ttl)
	return t, nil
}

func (e *oauthEntry) set(t string, ttl time.Duration) {
	e.mu.Lock()
	e.token, e.expires = t, time.Now().Add(ttl)
	e.mu.Unlock()
}

func (e *oauthEntry) invalidate() { e.set("", 0) }
