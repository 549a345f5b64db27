package pattern

import (
	"errors"
	"strings"
	"testing"
)

func TestCompiledPatternsMatchLikeGitHubsCheatSheet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		match   []string
		noMatch []string
	}{
		// Patterns to match branches and tags.
		{"feature/* matches one level below feature", "feature/*",
			[]string{"feature/my-branch", "feature/your-branch"}, []string{"feature/beta-a/my-branch", "feature", "xfeature/a"}},
		{"feature/** matches any depth below feature", "feature/**",
			[]string{"feature/beta-a/my-branch", "feature/your-branch", "feature/mona/the/octocat"}, []string{"feature", "main"}},
		{"an exact name matches only itself", "releases/mona-the-octocat",
			[]string{"releases/mona-the-octocat"}, []string{"releases/mona-the-octocat2", "releases/mona"}},
		{"a lone star matches names without a slash", "*",
			[]string{"main", "releases"}, []string{"all/the/branches"}},
		{"a double star matches every name", "**",
			[]string{"all/the/branches", "every/tag", "main"}, nil},
		{"a leading star matches any prefix", "*feature",
			[]string{"mona-feature", "feature", "ver-10-feature"}, []string{"a/feature", "feature-x"}},
		{"v2* matches names starting with v2", "v2*",
			[]string{"v2", "v2.0", "v2.9"}, []string{"v1", "v3.0", "v2/x"}},
		{"plus repeats a class for semantic versions", "v[12].[0-9]+.[0-9]+",
			[]string{"v1.10.1", "v2.0.0"}, []string{"v3.0.0", "v1.0", "v1.x.0", "v1.0.0-rc1"}},
		// Patterns to match file paths.
		{"a lone star matches root files", "*",
			[]string{"README.md", "server.rb"}, []string{"docs/README.md"}},
		{"question mark makes the preceding character optional", "*.jsx?",
			[]string{"page.js", "page.jsx"}, []string{"page.jsxx", "src/page.js", "page.j"}},
		{"double star matches every path", "**",
			[]string{"all/the/files.md"}, nil},
		{"star dot js matches js files at the root", "*.js",
			[]string{"app.js", "index.js"}, []string{"js/index.js"}},
		{"double star dot js matches js files anywhere", "**.js",
			[]string{"index.js", "js/index.js", "src/js/app.js"}, []string{"index.jsx"}},
		{"docs/* matches files directly in docs", "docs/*",
			[]string{"docs/README.md", "docs/file.txt"}, []string{"docs/mona/octocat.txt", "README.md"}},
		{"docs/** matches files anywhere in docs", "docs/**",
			[]string{"docs/README.md", "docs/mona/octocat.txt"}, []string{"src/docs/a.md"}},
		{"docs/**/*.md matches markdown anywhere in docs", "docs/**/*.md",
			[]string{"docs/README.md", "docs/mona/hello-world.md", "docs/a/markdown/file.md"}, []string{"docs/a.txt", "README.md"}},
		{"**/docs/** matches a docs directory anywhere", "**/docs/**",
			[]string{"docs/hello.md", "dir/docs/my-file.txt", "space/docs/plan/space.doc"}, []string{"mydocs/a.md", "docs"}},
		{"**/README.md matches README.md at any depth including the root", "**/README.md",
			[]string{"README.md", "js/README.md"}, []string{"README.mdx", "xREADME.md"}},
		{"**/*src/** matches folders with a src suffix", "**/*src/**",
			[]string{"a/src/app.js", "my-src/code/js/app.js"}, []string{"src.js", "source/app.js"}},
		{"**/*-post.md matches the suffix anywhere", "**/*-post.md",
			[]string{"my-post.md", "path/their-post.md"}, []string{"post.md"}},
		{"**/migrate-*.sql matches prefix and suffix anywhere", "**/migrate-*.sql",
			[]string{"migrate-10909.sql", "db/migrate-v1.0.sql", "db/sept/migrate-v1.sql"}, []string{"db/migrate-1.sq"}},
		// Details of the syntax.
		{"a class matches one listed character", "[CB]at",
			[]string{"Cat", "Bat"}, []string{"Hat", "at", "CBat"}},
		{"a range matches any character within it", "[1-2]00",
			[]string{"100", "200"}, []string{"300", "00"}},
		{"mixed ranges match digits and lowercase letters", "x[0-9a-z]",
			[]string{"x0", "xq"}, []string{"xQ", "x-"}},
		{"a backslash makes a special character literal", `release\+hotfix`,
			[]string{"release+hotfix"}, []string{"releasehotfix", "releaseehotfix"}},
		{"plus repeats the preceding literal", "ab+c",
			[]string{"abc", "abbbc"}, []string{"ac"}},
		{"regexp metacharacters are literal", "a.b(c)|d$",
			[]string{"a.b(c)|d$"}, []string{"axb(c)|d$", "ab"}},
		{"a bang not at the start is literal", "a!b",
			[]string{"a!b"}, []string{"ab"}},
		{"non-ASCII characters are literal and repeatable", "caf\u00e9+",
			[]string{"caf\u00e9", "caf\u00e9\u00e9"}, []string{"caf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(tt.pattern)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.pattern, err)
			}
			for _, s := range tt.match {
				if !p.Match(s) {
					t.Errorf("%q should match %q (regexp %s)", tt.pattern, s, p.re())
				}
			}
			for _, s := range tt.noMatch {
				if p.Match(s) {
					t.Errorf("%q should not match %q (regexp %s)", tt.pattern, s, p.re())
				}
			}
		})
	}
}

func TestListsLetTheLastMatchingPatternDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string
		in       []string
		out      []string
	}{
		{"a later negation excludes what an earlier pattern included", []string{"*.md", "!README.md"},
			[]string{"hello.md"}, []string{"README.md", "docs/hello.md"}},
		{"a positive pattern after a negation re-includes", []string{"*.md", "!README.md", "README*"},
			[]string{"hello.md", "README.md", "README.doc"}, []string{"docs/hello.md"}},
		{"branch negation as in GitHub's example", []string{"releases/**", "!releases/**-alpha"},
			[]string{"releases/10", "releases/beta/mona"}, []string{"releases/10-alpha", "releases/beta/3-alpha", "main"}},
		{"an empty list includes nothing", nil, nil, []string{"main"}},
		{"only negations include nothing", []string{"!main"}, nil, []string{"main", "dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := CompileList(tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.in {
				if !l.Includes(s) {
					t.Errorf("%q should include %q", tt.patterns, s)
				}
			}
			for _, s := range tt.out {
				if l.Includes(s) {
					t.Errorf("%q should not include %q", tt.patterns, s)
				}
			}
		})
	}
}

func TestBadPatternsSayWhatIsWrongAndWhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		offset  int
		want    string
	}{
		{"an empty pattern", "", 0, "empty pattern"},
		{"a bang alone", "!", 1, "nothing follows"},
		{"a leading question mark", "?abc", 0, "must follow a character"},
		{"a plus after a star", "a*+", 2, "must follow a character"},
		{"a plus after a bang", "!+a", 1, "must follow a character"},
		{"two quantifiers in a row", "ab?+", 3, "must follow a character"},
		{"an unclosed class", "v[0-9", 1, "never closed"},
		{"an empty class", "v[]", 1, "empty [] class"},
		{"a symbol inside a class", "v[._]", 2, "not allowed in a [] class"},
		{"a range across letter and digit", "v[a-9]", 2, "not within a-z"},
		{"a reversed range", "v[z-a]", 2, "not within a-z"},
		{"a range without an upper bound", "v[a-]", 3, "no upper bound"},
		{"a trailing backslash", `abc\`, 3, "escapes nothing"},
		{"invalid UTF-8", "a\xffb", 1, "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile(tt.pattern)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Compile(%q) = %v, want a *pattern.Error", tt.pattern, err)
			}
			if pe.Offset != tt.offset || !strings.Contains(pe.Msg, tt.want) {
				t.Errorf("Compile(%q) error = %v (offset %d), want offset %d and %q", tt.pattern, err, pe.Offset, tt.offset, tt.want)
			}
		})
	}
}

func TestCompileListReportsEveryBadPattern(t *testing.T) {
	t.Parallel()
	_, err := CompileList([]string{"ok", "[", "?x"})
	if err == nil {
		t.Fatal("want an error")
	}
	var pes []*Error
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *Error
		if errors.As(e, &pe) {
			pes = append(pes, pe)
		}
	}
	if len(pes) != 2 || pes[0].Pattern != "[" || pes[1].Pattern != "?x" {
		t.Errorf("errors = %v, want one for %q and one for %q", err, "[", "?x")
	}
}

func TestOnlyNegativeListsAreRecognised(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		patterns []string
		want     bool
	}{
		{nil, false},
		{[]string{"main"}, false},
		{[]string{"!main", "dev"}, false},
		{[]string{"!main", "!dev"}, true},
	} {
		l, err := CompileList(tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.OnlyNegative(); got != tt.want {
			t.Errorf("OnlyNegative(%q) = %v, want %v", tt.patterns, got, tt.want)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"feature/**", "v[12].[0-9]+.[0-9]+", "**/README.md", "!*.md", `a\+`, "[a-"} {
		f.Add(s, "feature/a")
	}
	f.Fuzz(func(t *testing.T, p, name string) {
		pat, err := Compile(p)
		if err != nil {
			return
		}
		if !pat.regexpValid() {
			t.Fatalf("Compile(%q) accepted a pattern whose regexp does not build", p)
		}
		pat.Match(name)
	})
}
