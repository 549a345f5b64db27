package config

import (
	"encoding/json"
	"sort"
)

// SchemaID is the schema's $id.
const SchemaID = "https://github.com/agentrunner/agentrunner/schema/agents.schema.json"

// schemaGen collects the $defs of the schema while the key tables describe themselves.
type schemaGen struct {
	defs map[string]any
}

// schemaDef is an object table seen without its Go type.
type schemaDef interface {
	defName() string
	schemaBody(g *schemaGen) map[string]any
}

func (o *object[T]) defName() string { return o.def }

func (o *object[T]) schemaBody(g *schemaGen) map[string]any {
	props := make(map[string]any, len(o.fields))
	var required []string
	for _, f := range o.fields {
		s := f.schema(g)
		if f.doc != "" {
			s["description"] = f.doc
		}
		props[f.key] = s
		if f.required {
			required = append(required, f.key)
		}
	}
	body := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"properties":           props,
	}
	if o.doc != "" {
		body["description"] = o.doc
	}
	if len(required) > 0 {
		sort.Strings(required)
		body["required"] = toAny(required)
	}
	return body
}

// ref returns a $ref to o, adding its definition on first use.
func (g *schemaGen) ref(o schemaDef) map[string]any {
	name := o.defName()
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = nil // reserve the name first, in case of recursion
		g.defs[name] = o.schemaBody(g)
	}
	return map[string]any{"$ref": "#/$defs/" + name}
}

// Schema returns the JSON Schema (draft 2020-12) of one `.agents/*.yaml` file, generated from
// the same key tables the loader decodes with. Editors pick it up through a
// `# yaml-language-server: $schema=…` comment. The output is stable (sorted keys).
func Schema() []byte {
	g := &schemaGen{defs: map[string]any{}}
	root := routineObj.schemaBody(g)
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "agentrunner routine (.agents/*.yaml)"
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic("config: schema does not marshal: " + err.Error()) // static data: a bug, not input
	}
	return append(b, '\n')
}
