package render

import (
	"bytes"
	"html/template"
	"regexp"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/util"
)

// MaxMarkdownBytes bounds the Markdown source rendered. Past it the source is cut at the last
// whole line before the limit and a visible note says so: a report is for people, and a megabyte
// of it is more than anyone reads, while rendering is linear in size and an unbounded input
// would let one agent tie up the daemon.
const MaxMarkdownBytes = 1 << 20

// truncatedNote ends a report cut at MaxMarkdownBytes.
const truncatedNote = "\n\n---\n\n*Report truncated: it is longer than 1 MiB.*\n"

var md = goldmark.New(
	goldmark.WithExtensions(
		extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute)),
		extension.Strikethrough,
		extension.Linkify,
		extension.TaskList,
	),
	// Raw HTML in the source is dropped by goldmark (no html.WithUnsafe), and the output is
	// sanitized again below: two independent layers.
	goldmark.WithRendererOptions(renderer.WithNodeRenderers(
		util.Prioritized(saferNodes{}, 100),
	)),
)

var policy = newPolicy()

// newPolicy allows what goldmark's GFM output needs and nothing more: no images (see
// renderImage), no forms or inputs (task boxes are characters), no style, no class but a code
// block's language, and links only to http, https and mailto, absolute, with
// rel="nofollow noopener noreferrer" and target="_blank". Relative links are dropped: in a report
// they would point into the UI itself.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
		"code", "em", "strong", "del", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td")
	p.AllowAttrs("href").OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto")
	p.AllowRelativeURLs(false)
	p.RequireParseableURLs(true)
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowAttrs("start").Matching(regexp.MustCompile(`^[0-9]{1,9}$`)).OnElements("ol")
	p.AllowAttrs("align").Matching(regexp.MustCompile(`^(left|center|right)$`)).OnElements("th", "td")
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[A-Za-z0-9_+-]{1,40}$`)).OnElements("code")
	return p
}

// Markdown renders src, GitHub-flavoured Markdown written by an agent, as sanitized HTML safe to
// put in a page: no script, style, iframe, form or event handler survives, links are absolute
// http/https/mailto only, images become links (loading a remote image would tell its host the
// viewer's IP address and when they read the report), and terminal escapes are made visible (see
// Visible). Sources longer than MaxMarkdownBytes are cut, with a note saying so.
func Markdown(src []byte) template.HTML {
	truncated := false
	if len(src) > MaxMarkdownBytes {
		src = src[:MaxMarkdownBytes]
		if i := bytes.LastIndexByte(src, '\n'); i > 0 {
			src = src[:i]
		}
		truncated = true
	}
	text := Visible(string(src))
	if truncated {
		text += truncatedNote
	}
	var out bytes.Buffer
	if err := md.Convert([]byte(text), &out); err != nil {
		// goldmark fails only when writing fails, and a bytes.Buffer does not: show the text.
		return template.HTML("<pre>" + template.HTMLEscapeString(text) + "</pre>")
	}
	return template.HTML(policy.SanitizeBytes(out.Bytes()))
}

// saferNodes overrides goldmark's rendering of images and task-list boxes.
type saferNodes struct{}

// RegisterFuncs implements renderer.NodeRenderer.
func (saferNodes) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindImage, renderImage)
	reg.Register(east.KindTaskCheckBox, renderTaskBox)
}

// renderImage writes an image as a link to it labelled with its alt text, so that nothing is
// fetched until the reader chooses to. The sanitizer then vets the link like any other.
func renderImage(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	img := n.(*ast.Image)
	alt := plainText(img, src)
	if alt == "" {
		alt = "image"
	}
	_, _ = w.WriteString(`<a href="`)
	_, _ = w.Write(util.EscapeHTML(util.URLEscape(img.Destination, true)))
	_, _ = w.WriteString(`">[image: `)
	_, _ = w.Write(util.EscapeHTML([]byte(alt)))
	_, _ = w.WriteString(`]</a>`)
	return ast.WalkSkipChildren, nil
}

// renderTaskBox writes a task-list box as a character, not an <input>: the report is not a form.
func renderTaskBox(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
	if entering {
		if n.(*east.TaskCheckBox).IsChecked {
			_, _ = w.WriteString("☑ ")
		} else {
			_, _ = w.WriteString("☐ ")
		}
	}
	return ast.WalkContinue, nil
}

// plainText is the text of n's descendants, without markup.
func plainText(n ast.Node, src []byte) string {
	var b bytes.Buffer
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch t := c.(type) {
		case *ast.Text:
			b.Write(t.Segment.Value(src))
		case *ast.String:
			b.Write(t.Value)
		}
		return ast.WalkContinue, nil
	})
	s := b.String()
	if !utf8.ValidString(s) {
		s = Visible(s)
	}
	return s
}
