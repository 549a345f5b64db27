// Package workspace owns everything agentrunner does with git: a mirror cache of remote
// repositories for the daemon, one git workspace per job at an exact commit (a complete
// repository that still works when bind-mounted into a container), capturing what an agent
// changed as a binary patch, merging the patches of many agents with a three-way merge, and
// pushing the result to a branch.
//
// Workspaces come in two modes (see Mode). In checkout mode every job gets a full private
// checkout, which a container bind-mounts. In overlay mode the jobs on one commit share one
// read-only checkout, written once and deleted with its last user, and each job gets an empty
// upper layer: the container engine mounts them as a kernel overlay (Layers), so a job costs
// O(files it changes) in time and disk. git works the same inside both, and Changes gives
// byte-identical patches for the same edits; in overlay mode it reads only the upper layer.
//
// Every git command runs the real git binary with an argv list (never a shell), a clean
// environment (no host or global git configuration, no terminal prompts) and, where a token is
// needed, the credential passed through the environment so it never appears in argv, in a
// remote URL written to config, or in an error message.
//
// Trust: the source repository (a user's checkout or a mirror) is trusted; a workspace is not
// once an agent has run in it, because the agent could have rewritten its .git/config to make
// git execute commands. Changes therefore never reads the workspace's git directory: it hashes
// the workspace's files into a private git directory kept beside it.
//
// The package knows nothing about containers, GitHub's API or the run engine.
package workspace
