package procfile

import (
	"strings"
)

// Command is how a Procfile command runs: as Args, exec'd by tender with $NAME and ${NAME}
// expanded from the process's environment, or, when it uses shell syntax beyond that, with
// /bin/sh -c (Shell says which syntax).
type Command struct {
	Args  []string
	Shell string // why it needs a shell ("|", "&&", "exec"...); "" when it needs none
}

// ShellArgs runs command with /bin/sh -c, as foreman does for every command.
func ShellArgs(command string) []string { return []string{"/bin/sh", "-c", command} }

// ParseCommand reads command as sh would, for the commands that need nothing of sh but word
// splitting, quotes and variables: words split at blanks; '...' taken as written; "..." with
// \", \\, \$ and \` escaped and $NAME or ${NAME} expanded; \x outside quotes is x; $NAME and
// ${NAME} outside quotes expanded and split at blanks, as sh splits them (but not globbed). A
// variable that environ lacks is empty. Anything else of sh's syntax (pipes, lists,
// redirections, globs, command substitution, assignments before the command, a builtin or a
// keyword as the command, other parameter expansions) makes a shell command: Shell says what.
func ParseCommand(command string, environ []string) Command {
	p := parser{in: command, env: environ}
	args, why := p.words()
	if why == "" && len(args) > 0 {
		if isShellWord(args[0]) && !p.firstQuoted {
			why = args[0]
		} else if p.assignment {
			why = "an assignment before the command"
		}
	}
	if why != "" || len(args) == 0 {
		if why == "" {
			why = "no words"
		}
		return Command{Args: ShellArgs(command), Shell: why}
	}
	return Command{Args: args}
}

// isShellWord reports whether a command word is sh's own: a builtin with no program of that
// name (exec, cd...), or a keyword.
func isShellWord(w string) bool {
	switch w {
	case "exec", "cd", "export", "eval", "set", "unset", "ulimit", "umask", "trap", ".", "source", "alias",
		"if", "for", "while", "until", "case", "{", "!", "[[", "function", "readonly", "shift", "wait":
		return true
	}
	return false
}

type parser struct {
	in          string
	i           int
	env         []string
	firstQuoted bool // the first word had quotes: "exec" is then a program's name
	assignment  bool // the first word is NAME=value
}

// special are the characters that, unquoted, mean more than themselves to sh.
const special = "|&;<>()`*?[#~"

func (p *parser) words() (words []string, why string) {
	var cur strings.Builder
	inWord, quoted := false, false
	end := func() {
		if inWord {
			if len(words) == 0 {
				p.firstQuoted = quoted
				if name, _, ok := strings.Cut(cur.String(), "="); ok && envName.MatchString(name) && !quoted {
					p.assignment = true
				}
			}
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord, quoted = false, false
	}
	for p.i < len(p.in) {
		c := p.in[p.i]
		switch {
		case c == ' ' || c == '\t':
			end()
			p.i++
		case c == '\n' || c == '\r':
			return nil, "a line break"
		case c == '\\':
			if p.i+1 >= len(p.in) {
				return nil, "a trailing \\"
			}
			cur.WriteByte(p.in[p.i+1])
			inWord = true
			p.i += 2
		case c == '\'':
			j := strings.IndexByte(p.in[p.i+1:], '\'')
			if j < 0 {
				return nil, "an unclosed '"
			}
			cur.WriteString(p.in[p.i+1 : p.i+1+j])
			inWord, quoted = true, true
			p.i += j + 2
		case c == '"':
			if why := p.doubleQuoted(&cur); why != "" {
				return nil, why
			}
			inWord, quoted = true, true
		case c == '$':
			value, why := p.variable()
			if why != "" {
				return nil, why
			}
			// Unquoted, the value is split at blanks into words, as sh does; an empty one
			// adds no word of its own.
			fields := strings.Fields(value)
			for k, f := range fields {
				if k > 0 || (value != "" && (value[0] == ' ' || value[0] == '\t')) {
					end()
				}
				cur.WriteString(f)
				inWord = true
			}
			if value != "" && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
				end()
			}
		case c == '~' || c == '#':
			if !inWord {
				return nil, string(c)
			}
			cur.WriteByte(c)
			p.i++
		case strings.IndexByte(special, c) >= 0:
			if c == '&' && p.i+1 < len(p.in) && p.in[p.i+1] == '&' {
				return nil, "&&"
			}
			if c == '|' && p.i+1 < len(p.in) && p.in[p.i+1] == '|' {
				return nil, "||"
			}
			return nil, string(c)
		default:
			cur.WriteByte(c)
			inWord = true
			p.i++
		}
	}
	end()
	return words, ""
}

// doubleQuoted reads "..." from p.i into cur.
func (p *parser) doubleQuoted(cur *strings.Builder) (why string) {
	p.i++ // the opening quote
	for p.i < len(p.in) {
		c := p.in[p.i]
		switch c {
		case '"':
			p.i++
			return ""
		case '\\':
			if p.i+1 < len(p.in) && strings.IndexByte("\"\\$`", p.in[p.i+1]) >= 0 {
				cur.WriteByte(p.in[p.i+1])
				p.i += 2
				continue
			}
			cur.WriteByte(c) // sh keeps a backslash before anything else in double quotes
			p.i++
		case '`':
			return "`"
		case '$':
			value, why := p.variable()
			if why != "" {
				return why
			}
			cur.WriteString(value)
		default:
			cur.WriteByte(c)
			p.i++
		}
	}
	return `an unclosed "`
}

// variable reads $NAME or ${NAME} at p.i and returns its value. A lone $ (at the end, before a
// blank or a quote) is itself; any other expansion is the shell's.
func (p *parser) variable() (value, why string) {
	rest := p.in[p.i+1:]
	if rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '"' || rest[0] == '\'' {
		p.i++
		return "$", ""
	}
	if rest[0] == '{' {
		name, _, ok := strings.Cut(rest[1:], "}")
		if !ok || !envName.MatchString(name) {
			return "", "${...}"
		}
		p.i += len(name) + 3
		v, _ := lookup(p.env, name)
		return v, ""
	}
	n := 0
	for n < len(rest) && (rest[n] == '_' || 'a' <= rest[n]|0x20 && rest[n]|0x20 <= 'z' || n > 0 && '0' <= rest[n] && rest[n] <= '9') {
		n++
	}
	if n == 0 {
		return "", "$" + rest[:1]
	}
	p.i += n + 1
	v, _ := lookup(p.env, rest[:n])
	return v, ""
}
