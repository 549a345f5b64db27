// Package githubfake is an in-process fake of the part of GitHub's REST API that agentrunner uses.
// Every request is checked against GitHub's own OpenAPI description (method, path, query, body
// schema); anything undescribed or malformed fails the test. It keeps state (check runs, pull
// requests, comments, refs, tokens, files) so tests can drive whole flows, injects faults on
// demand, and records every request for assertions.
package githubfake

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Request is one request the fake received.
type Request struct {
	Method    string
	Path      string // decoded, without the /api/v3 prefix
	Operation string // OpenAPI operationId, "" when undescribed
	Template  string // OpenAPI path template, "" when undescribed
	Params    map[string]string
	Query     url.Values
	Header    http.Header
	Body      []byte
	Status    int // the status the fake answered with
}

// Fault is a scripted failure for matching requests.
type Fault struct {
	Method string
	// Path is an OpenAPI template ("/repos/{owner}/{repo}/check-runs"), an exact path, or a
	// path.Match glob ("/repos/*/*/check-runs/*").
	Path   string
	Status int
	Header map[string]string
	Body   string // default: a GitHub-style {"message": ...}, or nothing for 5xx
	Times  int    // how many requests it fails (default 1)
}

// Option configures a Fake.
type Option func(*Fake)

// WithClock makes the fake use clock for token expiry, JWT checks and timestamps.
func WithClock(c interface{ Now() time.Time }) Option { return func(f *Fake) { f.clock = c } }

// WithTokenTTL sets how long minted installation tokens live (default 1h, as on GitHub).
func WithTokenTTL(d time.Duration) Option { return func(f *Fake) { f.tokenTTL = d } }

// Fake is the fake GitHub API server. All methods are safe for concurrent use.
type Fake struct {
	t     testing.TB
	spec  *spec
	srv   *httptest.Server
	clock interface{ Now() time.Time }

	mu          sync.Mutex
	requests    []Request
	violations  []string
	faults      []*Fault
	expects     []*expectation
	nextID      int64
	tokenTTL    time.Duration
	apps        map[int64]*rsa.PublicKey
	staticToks  map[string]bool
	tokens      map[string]issuedToken
	tokensMade  int
	repos       map[string]*repoState
	checkRuns   []*CheckRun
	pulls       []*PullRequest
	comments    []*Comment
	installRepo map[string]int64

	oauthApps   map[string]oauthApp
	oauthCodes  map[string]oauthCode
	userTokens  map[string]issuedUserToken
	browserUser string
}

type expectation struct {
	method, path string
	hits         int
}

type issuedToken struct {
	installation int64
	expires      time.Time
}

type repoState struct {
	owner, name   string
	id            int64
	defaultBranch string
	private       bool
	nextNumber    int
	refs          map[string]string            // "heads/main" → sha
	files         map[string]map[string][]byte // ref → path → content
	perms         map[string]string            // user → role
}

// CheckRun is the fake's state for one check run.
type CheckRun struct {
	ID          int64
	Owner, Repo string
	Name        string
	HeadSHA     string
	Status      string
	Conclusion  string
	ExternalID  string
	DetailsURL  string
	StartedAt   string
	CompletedAt string
	Title       string
	Summary     string
	Text        string
	Annotations []map[string]any // accumulated over create and every update, as GitHub does
	Actions     []any
	// History is the status after each create/update call, e.g. queued, in_progress, completed.
	History []string
}

// PullRequest is the fake's state for one pull request.
type PullRequest struct {
	ID          int64
	Owner, Repo string
	Number      int
	Title       string
	Body        string
	Head, Base  string // branch names (head without an "owner:" prefix)
	HeadOwner   string
	State       string
	Draft       bool
	Updates     int
}

// Comment is the fake's state for one issue comment.
type Comment struct {
	ID          int64
	Owner, Repo string
	Issue       int
	Body        string
	User        string
	Updates     int
}

// New starts a fake. It fails t at once when GitHub's description cannot be loaded, and at
// cleanup when a fault or expectation was never used.
func New(t testing.TB, opts ...Option) *Fake {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatalf("%v", err)
	}
	f := &Fake{
		t: t, spec: s, clock: realClock{}, nextID: 1000, tokenTTL: time.Hour,
		apps: map[int64]*rsa.PublicKey{}, staticToks: map[string]bool{}, tokens: map[string]issuedToken{},
		repos: map[string]*repoState{}, installRepo: map[string]int64{},
	}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.srv.Close()
		f.Verify()
	})
	return f
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// URL is the API root for github.com-style clients, with a trailing slash.
func (f *Fake) URL() string { return f.srv.URL + "/" }

// EnterpriseURL is the API root in GitHub Enterprise Server form (".../api/v3/").
func (f *Fake) EnterpriseURL() string { return f.srv.URL + "/api/v3/" }

// HTTPClient returns a client for the fake's server.
func (f *Fake) HTTPClient() *http.Client { return f.srv.Client() }

// Close stops the server early, so tests can exercise connection errors.
func (f *Fake) Close() { f.srv.Close() }

// --- configuration ---

// AddApp registers a GitHub App: /app endpoints then require a JWT signed by key with iss=appID,
// and repository endpoints require a token the fake minted (or one given to AddToken).
func (f *Fake) AddApp(appID int64, key *rsa.PublicKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps[appID] = key
}

// AddToken accepts token on repository endpoints and turns authentication checks on.
func (f *Fake) AddToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.staticToks[token] = true
}

// TokensIssued counts installation tokens minted so far.
func (f *Fake) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokensMade
}

// AddRepo creates (or updates) a repository. Repositories are also created on first use, with
// default branch "main".
func (f *Fake) AddRepo(owner, name, defaultBranch string, installationID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repo(owner, name)
	if defaultBranch != "" {
		r.defaultBranch = defaultBranch
	}
	if installationID != 0 {
		f.installRepo[owner+"/"+name] = installationID
	}
}

// SetRef sets a git ref ("heads/main" or "refs/heads/main") to sha.
func (f *Fake) SetRef(owner, repo, ref, sha string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repo(owner, repo).refs[strings.TrimPrefix(ref, "refs/")] = sha
}

// Ref returns a ref's sha as the fake knows it.
func (f *Fake) Ref(owner, repo, ref string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sha, ok := f.repo(owner, repo).refs[strings.TrimPrefix(ref, "refs/")]
	return sha, ok
}

// SetFile serves content at path for ref ("" means the default branch).
func (f *Fake) SetFile(owner, repo, ref, filePath string, content []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repo(owner, repo)
	if ref == "" {
		ref = r.defaultBranch
	}
	if r.files[ref] == nil {
		r.files[ref] = map[string][]byte{}
	}
	r.files[ref][strings.Trim(filePath, "/")] = content
}

// SetPermission gives user a role on the repository: admin, maintain, write, triage or read.
// Users without one get 404, as non-collaborators do on a private repository.
func (f *Fake) SetPermission(owner, repo, user, role string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repo(owner, repo).perms[user] = role
}

// FailNext makes the next request matching method and pathPattern fail with status and headers.
func (f *Fake) FailNext(method, pathPattern string, status int, headers map[string]string) {
	f.Fail(Fault{Method: method, Path: pathPattern, Status: status, Header: headers})
}

// Fail queues a fault; faults apply in the order queued.
func (f *Fake) Fail(fault Fault) {
	if fault.Times <= 0 {
		fault.Times = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault)
}

// Expect records that the test expects at least one request matching method and pathPattern
// (same forms as Fault.Path); Verify fails the test otherwise.
func (f *Fake) Expect(method, pathPattern string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expects = append(f.expects, &expectation{method: method, path: pathPattern})
}

// Verify fails the test for every expectation never met and every fault never triggered. New
// registers it as a cleanup; calling it earlier is allowed.
func (f *Fake) Verify() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.expects {
		if e.hits == 0 {
			f.t.Errorf("githubfake: expected a request %s %s, none came", e.method, e.path)
		}
	}
	f.expects = nil
	for _, ft := range f.faults {
		f.t.Errorf("githubfake: fault %s %s → %d was never triggered (%d left)", ft.Method, ft.Path, ft.Status, ft.Times)
	}
	f.faults = nil
}

// Requests returns every request received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// RequestsTo returns the requests for one operationId, e.g. "checks/create".
func (f *Fake) RequestsTo(operationID string) []Request {
	var out []Request
	for _, r := range f.Requests() {
		if r.Operation == operationID {
			out = append(out, r)
		}
	}
	return out
}

// Violations returns every contract violation seen: undescribed routes, bad queries, bodies that
// do not match GitHub's schema. Each was also reported with t.Errorf.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// CheckRuns returns copies of all check runs in creation order.
func (f *Fake) CheckRuns() []CheckRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]CheckRun, len(f.checkRuns))
	for i, c := range f.checkRuns {
		out[i] = *c
		out[i].Annotations = slices.Clone(c.Annotations)
		out[i].History = slices.Clone(c.History)
	}
	return out
}

// PullRequests returns copies of all pull requests in creation order.
func (f *Fake) PullRequests() []PullRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PullRequest, len(f.pulls))
	for i, p := range f.pulls {
		out[i] = *p
	}
	return out
}

// Comments returns copies of all issue comments in creation order.
func (f *Fake) Comments() []Comment {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Comment, len(f.comments))
	for i, c := range f.comments {
		out[i] = *c
	}
	return out
}

// --- serving ---

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rawPath := r.URL.EscapedPath()
	rawPath = strings.TrimPrefix(rawPath, "/api/v3")
	var segs []string
	for _, s := range strings.Split(strings.TrimPrefix(rawPath, "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			u = s
		}
		segs = append(segs, u)
	}
	decoded := "/" + strings.Join(segs, "/")
	rec := Request{Method: r.Method, Path: decoded, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	if strings.HasPrefix(decoded, "/login/oauth/") {
		f.serveOAuth(w, r, &rec)
		return
	}

	op, params, pathOK := f.spec.match(r.Method, segs)
	if op == nil {
		what := "no such path"
		if pathOK {
			what = "method not described for this path"
		}
		f.violation(&rec, fmt.Sprintf("%s %s: %s in GitHub's REST description (%s)", r.Method, decoded, what, f.spec.path))
		f.finish(w, &rec, http.StatusNotFound, nil, errBody("Not Found"))
		return
	}
	rec.Operation, rec.Template, rec.Params = op.id, op.template, params

	var problems []string
	problems = append(problems, op.checkQuery(rec.Query)...)
	problems = append(problems, op.checkBody(r.Header.Get("Content-Type"), body)...)
	if len(problems) > 0 {
		f.violation(&rec, fmt.Sprintf("%s %s (%s) does not match GitHub's description: %s", r.Method, decoded, op.id, strings.Join(problems, "; ")))
		errs := make([]any, len(problems))
		for i, p := range problems {
			errs[i] = map[string]any{"code": "invalid", "message": p}
		}
		f.finish(w, &rec, http.StatusUnprocessableEntity, nil, mustJSON(map[string]any{
			"message": "Invalid request.", "errors": errs,
			"documentation_url": "https://docs.github.com/rest", "status": "422"}))
		return
	}

	if ft := f.takeFault(&rec); ft != nil {
		b := []byte(ft.Body)
		if ft.Body == "" && ft.Status < 500 {
			b = errBody(http.StatusText(ft.Status))
		}
		f.finish(w, &rec, ft.Status, ft.Header, b)
		return
	}

	if op.id == "users/get-authenticated" { // only a person's token says who they are
		status, out := f.authenticatedUser(r)
		f.finish(w, &rec, status, nil, out.body)
		return
	}
	if status, msg := f.authenticate(r, op); status != 0 {
		f.finish(w, &rec, status, nil, errBody(msg))
		return
	}

	var in map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		_ = json.Unmarshal(body, &in) // already schema-checked
	}
	f.mu.Lock()
	status, out := f.handle(op, params, rec.Query, in)
	f.mu.Unlock()
	f.finish(w, &rec, status, pageHeader(r, out), out.body)
}

// response is what a handler produces; link is set for paginated lists.
type response struct {
	body []byte
	next int // next page number, 0 when last
	last int
}

func pageHeader(r *http.Request, out response) map[string]string {
	if out.next == 0 {
		return nil
	}
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	q := u.Query()
	q.Set("page", strconv.Itoa(out.next))
	u.RawQuery = q.Encode()
	next := u.String()
	q.Set("page", strconv.Itoa(out.last))
	u.RawQuery = q.Encode()
	return map[string]string{"Link": fmt.Sprintf(`<%s>; rel="next", <%s>; rel="last"`, next, u.String())}
}

func (f *Fake) finish(w http.ResponseWriter, rec *Request, status int, header map[string]string, body []byte) {
	for k, v := range header {
		w.Header().Set(k, v)
	}
	if len(body) > 0 && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	rec.Status = status
	f.mu.Lock()
	f.requests = append(f.requests, *rec)
	for _, e := range f.expects {
		if e.method == rec.Method && matchPattern(e.path, rec) {
			e.hits++
		}
	}
	f.mu.Unlock()
}

func (f *Fake) violation(rec *Request, msg string) {
	f.mu.Lock()
	f.violations = append(f.violations, msg)
	f.mu.Unlock()
	f.t.Errorf("githubfake: %s", msg)
}

func (f *Fake) takeFault(rec *Request) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.faults {
		if ft.Method != rec.Method || !matchPattern(ft.Path, rec) {
			continue
		}
		ft.Times--
		if ft.Times == 0 {
			f.faults = slices.Delete(f.faults, i, i+1)
		}
		c := *ft
		return &c
	}
	return nil
}

func matchPattern(pattern string, rec *Request) bool {
	if pattern == rec.Template || pattern == rec.Path {
		return true
	}
	ok, _ := path.Match(pattern, rec.Path)
	return ok
}

func errBody(msg string) []byte {
	return mustJSON(map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// authenticate checks credentials once an App or token is registered; without either, any
// request is accepted.
func (f *Fake) authenticate(r *http.Request, op *operation) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.apps) == 0 && len(f.staticToks) == 0 {
		return 0, ""
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(auth, "token ")
	}
	if !ok || tok == "" {
		return http.StatusUnauthorized, "Requires authentication"
	}
	if strings.HasPrefix(op.template, "/app/") || op.id == "apps/get-repo-installation" {
		return f.checkJWT(tok)
	}
	if f.staticToks[tok] {
		return 0, ""
	}
	it, ok := f.tokens[tok]
	if !ok {
		return http.StatusUnauthorized, "Bad credentials"
	}
	if !f.clock.Now().Before(it.expires) {
		return http.StatusUnauthorized, "Bad credentials (installation token expired)"
	}
	return 0, ""
}

func (f *Fake) checkJWT(tok string) (int, string) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		iss, err := t.Claims.GetIssuer()
		if err != nil {
			return nil, err
		}
		id, err := strconv.ParseInt(iss, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("iss %q is not an app id", iss)
		}
		key, ok := f.apps[id]
		if !ok {
			return nil, fmt.Errorf("unknown app %d", id)
		}
		return key, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(f.clock.Now), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil {
		return http.StatusUnauthorized, "A JSON web token could not be decoded: " + err.Error()
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute+time.Minute {
		return http.StatusUnauthorized, "'Expiration time' claim ('exp') is too far in the future"
	}
	return 0, ""
}

// --- state and handlers (called with f.mu held) ---

func (f *Fake) id() int64 { f.nextID++; return f.nextID }

func (f *Fake) repo(owner, name string) *repoState {
	key := owner + "/" + name
	r, ok := f.repos[key]
	if !ok {
		r = &repoState{owner: owner, name: name, id: f.id(), defaultBranch: "main", refs: map[string]string{},
			files: map[string]map[string][]byte{}, perms: map[string]string{}}
		f.repos[key] = r
	}
	return r
}

func (f *Fake) base() string { return f.srv.URL + "/api/v3" }
func (f *Fake) now() string  { return f.clock.Now().UTC().Format(time.RFC3339) }

func nodeID(kind string, id int64) string {
	return base64.RawStdEncoding.EncodeToString([]byte(fmt.Sprintf("%s%d", kind, id)))
}

func (f *Fake) user(login string) map[string]any {
	return map[string]any{"login": login, "id": 1, "node_id": nodeID("U", 1), "type": "User",
		"html_url": "https://github.com/" + login, "url": f.base() + "/users/" + login}
}

func (f *Fake) repoJSON(r *repoState) map[string]any {
	full := r.owner + "/" + r.name
	return map[string]any{
		"id": r.id, "node_id": nodeID("R", r.id), "name": r.name, "full_name": full,
		"owner": f.user(r.owner), "private": r.private, "default_branch": r.defaultBranch,
		"html_url": "https://github.com/" + full, "url": f.base() + "/repos/" + full,
		"clone_url": "https://github.com/" + full + ".git", "visibility": "public", "fork": false,
		"permissions": map[string]any{"admin": false, "push": true, "pull": true},
	}
}

func (f *Fake) handle(op *operation, p map[string]string, q url.Values, in map[string]any) (int, response) {
	ok := func(status int, v any) (int, response) { return status, response{body: mustJSON(v)} }
	notFound := func() (int, response) { return http.StatusNotFound, response{body: errBody("Not Found")} }
	str := func(k string) string { s, _ := in[k].(string); return s }

	switch op.id {
	case "apps/create-installation-access-token":
		inst, _ := strconv.ParseInt(p["installation_id"], 10, 64)
		f.tokensMade++
		tok := fmt.Sprintf("ghs_fake%d_%d", inst, f.tokensMade)
		exp := f.clock.Now().Add(f.tokenTTL).UTC()
		f.tokens[tok] = issuedToken{installation: inst, expires: exp}
		return ok(http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
			"permissions":          map[string]any{"checks": "write", "contents": "write", "pull_requests": "write", "issues": "write"},
			"repository_selection": "all"})

	case "apps/get-repo-installation":
		id, found := f.installRepo[p["owner"]+"/"+p["repo"]]
		if !found {
			return notFound()
		}
		return ok(http.StatusOK, map[string]any{"id": id, "app_id": 1, "account": f.user(p["owner"]),
			"target_type": "Organization", "html_url": fmt.Sprintf("https://github.com/settings/installations/%d", id)})

	case "apps/list-repos-accessible-to-installation":
		var list []any
		keys := make([]string, 0, len(f.repos))
		for k := range f.repos {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			list = append(list, f.repoJSON(f.repos[k]))
		}
		return ok(http.StatusOK, map[string]any{"total_count": len(list), "repositories": nonNil(list)})

	case "users/get-authenticated":
		// serve answers it from the person's own token before handle; reaching here means none.
		return http.StatusUnauthorized, response{body: errBody("Requires authentication")}

	case "repos/get":
		return ok(http.StatusOK, f.repoJSON(f.repo(p["owner"], p["repo"])))

	case "repos/get-branch":
		r := f.repo(p["owner"], p["repo"])
		sha, found := r.refs["heads/"+p["branch"]]
		if !found {
			return http.StatusNotFound, response{body: errBody("Branch not found")}
		}
		return ok(http.StatusOK, map[string]any{"name": p["branch"], "protected": false,
			"commit": map[string]any{"sha": sha, "url": f.base() + "/repos/" + r.owner + "/" + r.name + "/commits/" + sha}})

	case "repos/get-collaborator-permission-level":
		role, found := f.repo(p["owner"], p["repo"]).perms[p["username"]]
		if !found {
			return http.StatusNotFound, response{body: errBody(p["username"] + " is not a user")}
		}
		legacy := role
		switch role {
		case "maintain":
			legacy = "write"
		case "triage":
			legacy = "read"
		}
		return ok(http.StatusOK, map[string]any{"permission": legacy, "role_name": role, "user": f.user(p["username"])})

	case "repos/get-content":
		return f.getContent(p, q)

	case "git/get-ref":
		r := f.repo(p["owner"], p["repo"])
		sha, found := r.refs[p["ref"]]
		if !found {
			return notFound()
		}
		return ok(http.StatusOK, f.refJSON(r, p["ref"], sha))

	case "git/create-ref":
		r := f.repo(p["owner"], p["repo"])
		ref := str("ref")
		if !strings.HasPrefix(ref, "refs/") || strings.Count(ref, "/") < 2 {
			return http.StatusUnprocessableEntity, response{body: errBody("Reference name must start with 'refs/' and have at least two slashes.")}
		}
		short := strings.TrimPrefix(ref, "refs/")
		if _, exists := r.refs[short]; exists {
			return http.StatusUnprocessableEntity, response{body: errBody("Reference already exists")}
		}
		r.refs[short] = str("sha")
		return ok(http.StatusCreated, f.refJSON(r, short, str("sha")))

	case "git/update-ref":
		r := f.repo(p["owner"], p["repo"])
		if _, exists := r.refs[p["ref"]]; !exists {
			return http.StatusUnprocessableEntity, response{body: errBody("Reference does not exist")}
		}
		r.refs[p["ref"]] = str("sha")
		return ok(http.StatusOK, f.refJSON(r, p["ref"], str("sha")))

	case "checks/create":
		c := &CheckRun{ID: f.id(), Owner: p["owner"], Repo: p["repo"], Name: str("name"), HeadSHA: str("head_sha"), Status: "queued"}
		f.applyCheckRun(c, in)
		f.checkRuns = append(f.checkRuns, c)
		return ok(http.StatusCreated, f.checkRunJSON(c))

	case "checks/update", "checks/get":
		id, _ := strconv.ParseInt(p["check_run_id"], 10, 64)
		for _, c := range f.checkRuns {
			if c.ID == id && c.Owner == p["owner"] && c.Repo == p["repo"] {
				if op.id == "checks/update" {
					f.applyCheckRun(c, in)
				}
				return ok(http.StatusOK, f.checkRunJSON(c))
			}
		}
		return notFound()

	case "checks/list-for-ref":
		return f.listCheckRuns(p, q)

	case "pulls/create":
		return f.createPull(p, in)

	case "pulls/list":
		r := f.repo(p["owner"], p["repo"])
		state := q.Get("state")
		if state == "" {
			state = "open"
		}
		headOwner, headBranch, hasOwner := strings.Cut(q.Get("head"), ":")
		if !hasOwner {
			headOwner, headBranch = "", q.Get("head")
		}
		var list []any
		for _, pr := range f.pulls {
			if pr.Owner != r.owner || pr.Repo != r.name ||
				(state != "all" && pr.State != state) ||
				(q.Get("base") != "" && pr.Base != q.Get("base")) ||
				(headBranch != "" && pr.Head != headBranch) ||
				(headOwner != "" && pr.HeadOwner != headOwner) {
				continue
			}
			list = append(list, f.pullJSON(pr))
		}
		return paginate(q, list)

	case "pulls/get", "pulls/update":
		n, _ := strconv.Atoi(p["pull_number"])
		for _, pr := range f.pulls {
			if pr.Number != n || pr.Owner != p["owner"] || pr.Repo != p["repo"] {
				continue
			}
			if op.id == "pulls/update" {
				if v, has := in["title"].(string); has {
					pr.Title = v
				}
				if v, has := in["body"].(string); has {
					pr.Body = v
				}
				if v, has := in["state"].(string); has {
					pr.State = v
				}
				if v, has := in["base"].(string); has {
					pr.Base = v
				}
				pr.Updates++
			}
			return ok(http.StatusOK, f.pullJSON(pr))
		}
		return notFound()

	case "issues/create-comment":
		n, _ := strconv.Atoi(p["issue_number"])
		c := &Comment{ID: f.id(), Owner: p["owner"], Repo: p["repo"], Issue: n, Body: str("body"), User: "agentrunner[bot]"}
		f.comments = append(f.comments, c)
		return ok(http.StatusCreated, f.commentJSON(c))

	case "issues/list-comments":
		n, _ := strconv.Atoi(p["issue_number"])
		var list []any
		for _, c := range f.comments {
			if c.Issue == n && c.Owner == p["owner"] && c.Repo == p["repo"] {
				list = append(list, f.commentJSON(c))
			}
		}
		return paginate(q, list)

	case "issues/update-comment":
		id, _ := strconv.ParseInt(p["comment_id"], 10, 64)
		for _, c := range f.comments {
			if c.ID == id && c.Owner == p["owner"] && c.Repo == p["repo"] {
				c.Body = str("body")
				c.Updates++
				return ok(http.StatusOK, f.commentJSON(c))
			}
		}
		return notFound()
	}
	// Described by GitHub but not simulated: a gap in the fake, reported loudly.
	f.violations = append(f.violations, fmt.Sprintf("%s %s (%s) is described but the fake does not implement it", op.method, op.template, op.id))
	f.t.Errorf("githubfake: %s %s (%s) is described but not implemented by the fake", op.method, op.template, op.id)
	return http.StatusNotImplemented, response{body: errBody("not implemented by githubfake")}
}

func nonNil(list []any) []any {
	if list == nil {
		return []any{}
	}
	return list
}

// paginate slices list by per_page/page (GitHub's defaults: 30 per page) and sets the Link data.
func paginate(q url.Values, list []any) (int, response) {
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	last := max(1, (len(list)+per-1)/per)
	lo, hi := min((page-1)*per, len(list)), min(page*per, len(list))
	out := response{body: mustJSON(nonNil(list[lo:hi]))}
	if page < last {
		out.next, out.last = page+1, last
	}
	return http.StatusOK, out
}

func (f *Fake) refJSON(r *repoState, short, sha string) map[string]any {
	return map[string]any{"ref": "refs/" + short, "node_id": nodeID("REF", int64(len(short))),
		"url":    f.base() + "/repos/" + r.owner + "/" + r.name + "/git/refs/" + short,
		"object": map[string]any{"type": "commit", "sha": sha, "url": f.base() + "/repos/" + r.owner + "/" + r.name + "/git/commits/" + sha}}
}

func (f *Fake) applyCheckRun(c *CheckRun, in map[string]any) {
	set := func(k string, dst *string) {
		if v, ok := in[k].(string); ok {
			*dst = v
		}
	}
	if v, _ := in["name"].(string); v != "" {
		c.Name = v
	}
	set("status", &c.Status)
	set("conclusion", &c.Conclusion)
	set("external_id", &c.ExternalID)
	set("details_url", &c.DetailsURL)
	set("started_at", &c.StartedAt)
	set("completed_at", &c.CompletedAt)
	if c.Conclusion != "" {
		c.Status = "completed" // GitHub: providing a conclusion completes the run
	}
	if c.Status == "completed" && c.CompletedAt == "" {
		c.CompletedAt = f.now()
	}
	if c.StartedAt == "" {
		c.StartedAt = f.now()
	}
	if out, ok := in["output"].(map[string]any); ok {
		if v, ok := out["title"].(string); ok {
			c.Title = v
		}
		if v, ok := out["summary"].(string); ok {
			c.Summary = v
		}
		if v, ok := out["text"].(string); ok {
			c.Text = v
		}
		for _, a := range asSlice(out["annotations"]) {
			if m, ok := a.(map[string]any); ok {
				c.Annotations = append(c.Annotations, m)
			}
		}
	}
	if acts, ok := in["actions"].([]any); ok {
		c.Actions = acts
	}
	c.History = append(c.History, c.Status)
}

func (f *Fake) checkRunJSON(c *CheckRun) map[string]any {
	full := c.Owner + "/" + c.Repo
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{
		"id": c.ID, "node_id": nodeID("CR", c.ID), "name": c.Name, "head_sha": c.HeadSHA,
		"status": c.Status, "conclusion": opt(c.Conclusion), "external_id": c.ExternalID,
		"details_url": opt(c.DetailsURL), "started_at": opt(c.StartedAt), "completed_at": opt(c.CompletedAt),
		"url":      fmt.Sprintf("%s/repos/%s/check-runs/%d", f.base(), full, c.ID),
		"html_url": fmt.Sprintf("https://github.com/%s/runs/%d", full, c.ID),
		"output": map[string]any{"title": opt(c.Title), "summary": opt(c.Summary), "text": opt(c.Text),
			"annotations_count": len(c.Annotations),
			"annotations_url":   fmt.Sprintf("%s/repos/%s/check-runs/%d/annotations", f.base(), full, c.ID)},
		"check_suite":   map[string]any{"id": 1},
		"app":           map[string]any{"id": 1, "slug": "agentrunner", "name": "agentrunner"},
		"pull_requests": []any{},
	}
}

func (f *Fake) listCheckRuns(p map[string]string, q url.Values) (int, response) {
	r := f.repo(p["owner"], p["repo"])
	ref := p["ref"]
	sha := ref
	for _, cand := range []string{ref, "heads/" + ref, "tags/" + ref} {
		if s, ok := r.refs[strings.TrimPrefix(cand, "refs/")]; ok {
			sha = s
			break
		}
	}
	var matched []*CheckRun
	for _, c := range f.checkRuns {
		if c.Owner != r.owner || c.Repo != r.name || c.HeadSHA != sha {
			continue
		}
		if name := q.Get("check_name"); name != "" && c.Name != name {
			continue
		}
		if st := q.Get("status"); st != "" && c.Status != st {
			continue
		}
		matched = append(matched, c)
	}
	// filter=latest (the default) keeps the newest run per name.
	if q.Get("filter") != "all" {
		latest := map[string]*CheckRun{}
		for _, c := range matched {
			latest[c.Name] = c
		}
		matched = slices.DeleteFunc(matched, func(c *CheckRun) bool { return latest[c.Name] != c })
	}
	slices.Reverse(matched) // newest first, as GitHub lists them
	list := make([]any, 0, len(matched))
	for _, c := range matched {
		list = append(list, f.checkRunJSON(c))
	}
	_, page := paginate(q, list)
	var items []any
	_ = json.Unmarshal(page.body, &items)
	page.body = mustJSON(map[string]any{"total_count": len(list), "check_runs": nonNil(items)})
	return http.StatusOK, page
}

func (f *Fake) createPull(p map[string]string, in map[string]any) (int, response) {
	r := f.repo(p["owner"], p["repo"])
	title, _ := in["title"].(string)
	if title == "" {
		return http.StatusUnprocessableEntity, response{body: errBody("Validation Failed: title is required unless issue is given")}
	}
	head, _ := in["head"].(string)
	base, _ := in["base"].(string)
	headOwner, headBranch, ok := strings.Cut(head, ":")
	if !ok {
		headOwner, headBranch = r.owner, head
	}
	for _, pr := range f.pulls {
		if pr.Owner == r.owner && pr.Repo == r.name && pr.State == "open" && pr.Head == headBranch && pr.HeadOwner == headOwner && pr.Base == base {
			return http.StatusUnprocessableEntity, response{body: mustJSON(map[string]any{
				"message": "Validation Failed",
				"errors": []any{map[string]any{"resource": "PullRequest", "code": "custom",
					"message": fmt.Sprintf("A pull request already exists for %s:%s.", headOwner, headBranch)}}})}
		}
	}
	r.nextNumber++
	pr := &PullRequest{ID: f.id(), Owner: r.owner, Repo: r.name, Number: r.nextNumber, Title: title,
		Head: headBranch, HeadOwner: headOwner, Base: base, State: "open"}
	pr.Body, _ = in["body"].(string)
	pr.Draft, _ = in["draft"].(bool)
	f.pulls = append(f.pulls, pr)
	return http.StatusCreated, response{body: mustJSON(f.pullJSON(pr))}
}

func (f *Fake) pullJSON(pr *PullRequest) map[string]any {
	r := f.repo(pr.Owner, pr.Repo)
	full := pr.Owner + "/" + pr.Repo
	branch := func(owner, name string) map[string]any {
		return map[string]any{"label": owner + ":" + name, "ref": name, "sha": r.refs["heads/"+name],
			"user": f.user(owner), "repo": f.repoJSON(r)}
	}
	return map[string]any{
		"id": pr.ID, "node_id": nodeID("PR", pr.ID), "number": pr.Number, "state": pr.State,
		"title": pr.Title, "body": pr.Body, "draft": pr.Draft, "locked": false, "merged": false,
		"user": f.user("agentrunner[bot]"), "head": branch(pr.HeadOwner, pr.Head), "base": branch(pr.Owner, pr.Base),
		"url":        fmt.Sprintf("%s/repos/%s/pulls/%d", f.base(), full, pr.Number),
		"html_url":   fmt.Sprintf("https://github.com/%s/pull/%d", full, pr.Number),
		"issue_url":  fmt.Sprintf("%s/repos/%s/issues/%d", f.base(), full, pr.Number),
		"created_at": f.now(), "updated_at": f.now(),
	}
}

func (f *Fake) commentJSON(c *Comment) map[string]any {
	full := c.Owner + "/" + c.Repo
	return map[string]any{
		"id": c.ID, "node_id": nodeID("IC", c.ID), "body": c.Body, "user": f.user(c.User),
		"url":        fmt.Sprintf("%s/repos/%s/issues/comments/%d", f.base(), full, c.ID),
		"html_url":   fmt.Sprintf("https://github.com/%s/issues/%d#issuecomment-%d", full, c.Issue, c.ID),
		"issue_url":  fmt.Sprintf("%s/repos/%s/issues/%d", f.base(), full, c.Issue),
		"created_at": f.now(), "updated_at": f.now(), "author_association": "NONE",
	}
}

func (f *Fake) getContent(p map[string]string, q url.Values) (int, response) {
	r := f.repo(p["owner"], p["repo"])
	ref := q.Get("ref")
	if ref == "" {
		ref = r.defaultBranch
	}
	files := r.files[ref]
	want := strings.Trim(p["path"], "/")
	full := r.owner + "/" + r.name
	entry := func(name string, content []byte, withContent bool) map[string]any {
		sum := sha1.Sum(append([]byte(fmt.Sprintf("blob %d\x00", len(content))), content...))
		m := map[string]any{"type": "file", "name": path.Base(name), "path": name, "size": len(content),
			"sha":          hex.EncodeToString(sum[:]),
			"url":          fmt.Sprintf("%s/repos/%s/contents/%s?ref=%s", f.base(), full, name, url.QueryEscape(ref)),
			"html_url":     fmt.Sprintf("https://github.com/%s/blob/%s/%s", full, ref, name),
			"git_url":      fmt.Sprintf("%s/repos/%s/git/blobs/%s", f.base(), full, hex.EncodeToString(sum[:])),
			"download_url": fmt.Sprintf("https://raw.githubusercontent.com/%s/%s/%s", full, ref, name),
		}
		m["_links"] = map[string]any{"self": m["url"], "git": m["git_url"], "html": m["html_url"]}
		if withContent {
			m["encoding"] = "base64"
			m["content"] = base64.StdEncoding.EncodeToString(content)
		}
		return m
	}
	if content, ok := files[want]; ok {
		return http.StatusOK, response{body: mustJSON(entry(want, content, true))}
	}
	// A directory: list its direct children.
	var list []any
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, want+"/")
		if want == "" {
			rest, ok = name, true
		}
		if !ok {
			continue
		}
		if sub, _, isDir := strings.Cut(rest, "/"); isDir {
			if !dirs[sub] {
				dirs[sub] = true
				dir := strings.TrimPrefix(want+"/"+sub, "/")
				list = append(list, map[string]any{"type": "dir", "name": sub, "path": dir, "size": 0, "sha": "",
					"url": f.base() + "/repos/" + full + "/contents/" + dir, "html_url": nil, "git_url": nil, "download_url": nil,
					"_links": map[string]any{"self": f.base() + "/repos/" + full + "/contents/" + dir}})
			}
			continue
		}
		list = append(list, entry(name, files[name], false))
	}
	if list == nil {
		return http.StatusNotFound, response{body: errBody("Not Found")}
	}
	return http.StatusOK, response{body: mustJSON(list)}
}
