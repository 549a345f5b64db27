package main

import (
	"github.com/agentrunner/agentrunner/config"
	"github.com/spf13/cobra"
)

func init() { register(newSchemaCmd) }

func newSchemaCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of .agents/*.yaml",
		Long: "Schema prints the JSON Schema (draft 2020-12) of a routine file, the same as\n" +
			"schema/agents.schema.json. Point your editor at it with a first line like\n" +
			"  # yaml-language-server: $schema=../schema/agents.schema.json",
		Args: argsUsage(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			_, err := s.Out.Write(config.Schema())
			return err
		},
	}
}
