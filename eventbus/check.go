package eventbus

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wfeventbus/eventbus/bus/jetstream"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

// Every check of a config is made when its instance is created or
// initialised, never later, so that a host that creates and initialises
// every instance without starting any (eventbus validate) finds every
// problem that would stop the app, offline:
//
//   - CreateModule checks what a config says on its own: fields, ranges,
//     subjects, combinations of fields.
//   - InitModule, called once every module exists, checks what a module
//     config says about others: its broker, its stream, the stream its
//     dead letters go to, and what the broker can hold (replicas, message
//     size, subjects no other stream claims).
//   - CreateStep and CreateTrigger, called once every module exists and is
//     initialised, check the same of steps and triggers: the broker, the
//     consumer or stream they read, the streams that store the subjects
//     they publish to.
//
// A problem is an error: the instance is not created (or not initialised)
// and the app cannot start. Each problem of a config is reported, one per
// line, each beginning with the path of its field ("config.batch_size: ").
//
// A reference to something no module of the app declares is an error on a
// broker the plugin runs itself (the embedded one), which holds only what
// the app declares, and a Warning on an external broker, where a stream or
// consumer may be managed by something else. What cannot be known before
// a run (a subject or consumer that is a template with no literal prefix)
// is a Warning too, never skipped in silence.

// Warning is a likely mistake in a config that the plugin accepted.
type Warning struct {
	// Instance names the config: "module orders", "step publish",
	// "trigger pipeline:orders".
	Instance string
	// Field is the path of the field, beginning with "config".
	Field string
	// Message says what is likely wrong.
	Message string
}

// errInvalidTarget is what looking up a module whose creation failed
// returns: a reference to it is not checked further, since the module's
// own error already stops the app.
var errInvalidTarget = errors.New("refers to a module whose config is invalid")

// fieldError is one problem of a config.
type fieldError struct {
	field string // "config.batch_size"; "" for the config as a whole
	kind  error  // ErrConfig or ErrUnknownRef
	msg   string
}

func (e *fieldError) Error() string {
	msg := e.msg
	if e.kind == ErrUnknownRef {
		msg = ErrUnknownRef.Error() + ": " + msg
	}
	if e.field == "" {
		return msg
	}
	return e.field + ": " + msg
}

func (e *fieldError) Unwrap() error { return e.kind }

// configError is a decoding error of a config: its text is the decoder's
// (one line per field), and it matches ErrConfig.
type configError struct{ err error }

func (e *configError) Error() string   { return e.err.Error() }
func (e *configError) Unwrap() []error { return []error{ErrConfig, e.err} }

// checks collects the problems of one config.
type checks struct {
	p        *Plugin
	instance string
	errs     []error
}

func (p *Plugin) checks(instance string) *checks { return &checks{p: p, instance: instance} }

// fail records a problem with a field.
func (c *checks) fail(field, format string, args ...any) {
	c.errs = append(c.errs, &fieldError{field: field, kind: ErrConfig, msg: fmt.Sprintf(format, args...)})
}

// unknown records a reference to something that does not exist.
func (c *checks) unknown(field, format string, args ...any) {
	c.errs = append(c.errs, &fieldError{field: field, kind: ErrUnknownRef, msg: fmt.Sprintf(format, args...)})
}

// add records err as it is; a lookup of an invalid module is dropped.
func (c *checks) add(err error) {
	if err != nil && !errors.Is(err, errInvalidTarget) {
		c.errs = append(c.errs, err)
	}
}

// warn reports a likely mistake.
func (c *checks) warn(field, format string, args ...any) {
	c.p.warning(Warning{Instance: c.instance, Field: field, Message: fmt.Sprintf(format, args...)})
}

// has reports whether a problem was recorded for field.
func (c *checks) has(field string) bool {
	for _, err := range c.errs {
		var fe *fieldError
		if errors.As(err, &fe) && fe.field == field {
			return true
		}
		for _, pe := range protomap.FieldErrors(err) {
			if pe.Path == field {
				return true
			}
		}
	}
	return false
}

func (c *checks) ok() bool { return len(c.errs) == 0 }

// err returns every problem, one per line; nil when there is none.
func (c *checks) err() error { return errors.Join(c.errs...) }

// warning hands w to the host's Warn, or logs it.
func (p *Plugin) warning(w Warning) {
	if p.warn != nil {
		p.warn(w)
		return
	}
	p.log.Warn("config warning", "instance", w.Instance, "field", w.Field, "warning", w.Message)
}

// missing reports a reference to a stream or consumer that no module of
// the app declares on b (see the package's rules above).
func (c *checks) missing(b *broker, field, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	if b.holdsOnlyDeclared() {
		c.unknown(field, "%s; the embedded broker %s holds only what this app declares", what, b.name)
		return
	}
	c.warn(field, "%s; on external broker %s it must be created by something other than this app", what, b.name)
}

// backend records the problems the broker's bus would refuse cfg with
// when asked; path is where the fields it names are.
func (c *checks) backend(err error) {
	var fe *jetstream.FieldError
	switch {
	case err == nil:
	case errors.As(err, &fe):
		if field := "config." + fe.Field; !c.has(field) {
			c.fail(field, "%s", fe.Reason)
		}
	default:
		c.fail("config", "%v", err)
	}
}

// checkSubject records a subject that is not valid: a pattern when
// wildcards is true, a subject to publish to otherwise.
func (c *checks) checkSubject(field, subject string, wildcards bool) bool {
	if err := jetstream.CheckSubject(subject, wildcards); err != nil {
		c.fail(field, "%v", err)
		return false
	}
	return true
}

// markInvalid remembers the names a module whose creation failed declares,
// so that references to it are not reported as missing on top of its own
// problems; of a stream, also the subjects it would store, when its config
// says them.
func (p *Plugin) markInvalid(typ, name string, config map[string]any) {
	kind := canonicalModuleType(typ)
	names := []string{name}
	if n, ok := config["name"].(string); ok && n != "" {
		names = append(names, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		p.invalid[kind+"\x00"+n] = true
	}
	if kind != TypeStream {
		return
	}
	list, _ := config["subjects"].([]any)
	known := 0
	for _, v := range list {
		if subj, ok := v.(string); ok {
			p.invalidSubjects = append(p.invalidSubjects, subj)
			known++
		}
	}
	if known == 0 || known != len(list) {
		p.invalidSubjects = append(p.invalidSubjects, ">")
	}
}

// isInvalid reports whether a module of kind declaring name failed.
func (p *Plugin) isInvalid(kind, name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.invalid[kind+"\x00"+name]
}

// invalidStores reports whether a stream module whose creation failed
// may have stored subject (or, for one with a template, subjects beginning
// with its literal prefix).
func (p *Plugin) invalidStores(subject string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix, templated := templatePrefix(subject)
	for _, pat := range p.invalidSubjects {
		if (!templated && subjectMatches(pat, subject)) || (templated && prefixMatches(pat, prefix)) {
			return true
		}
	}
	return false
}

// streamsOn returns the stream modules on b, in creation order.
func (p *Plugin) streamsOn(b *broker) []*streamModule {
	p.mu.Lock()
	all := slices.Clone(p.streamOrder)
	p.mu.Unlock()
	var out []*streamModule
	for _, s := range all {
		if on, err := p.broker(s.brokerRef); err == nil && on == b {
			out = append(out, s)
		}
	}
	return out
}

// storing returns the stream on b whose subjects match subject, if any.
func (p *Plugin) storing(b *broker, subject string) *streamModule {
	for _, s := range p.streamsOn(b) {
		for _, pat := range s.cfg.Subjects {
			if subjectMatches(pat, subject) {
				return s
			}
		}
	}
	return nil
}

// describeStreams lists the streams of b with their subjects, for
// messages.
func (p *Plugin) describeStreams(b *broker) string {
	var parts []string
	for _, s := range p.streamsOn(b) {
		parts = append(parts, fmt.Sprintf("%s %v", s.cfg.Name, s.cfg.Subjects))
	}
	if len(parts) == 0 {
		return "none declared"
	}
	return "declared: " + strings.Join(parts, ", ")
}

// publishSubject checks a subject a step publishes to: valid, and stored by
// a stream of b (or, when b is known only at run time, of any broker). A
// subject with a template is checked by its literal prefix.
func (c *checks) publishSubject(b *broker, field, subject string) {
	prefix, templated := templatePrefix(subject)
	switch {
	case !templated:
		if !c.checkSubject(field, subject, false) {
			return
		}
	case prefix == "":
		c.warn(field, "%q is a template, so whether a stream stores what it renders to is known only at run time", subject)
		return
	}
	brokers := []*broker{b}
	if b == nil {
		brokers = c.p.allBrokers()
	}
	for _, on := range brokers {
		if c.p.stores(on, subject) {
			return
		}
	}
	if b == nil {
		c.warn(field, "no stream of any broker stores %s; publishing will fail unless one exists on the broker broker_ref renders to", describeSubject(subject))
		return
	}
	if c.p.invalidStores(subject) {
		return
	}
	c.missing(b, field, "no stream on broker %s stores %s (%s)", b.name, describeSubject(subject), c.p.describeStreams(b))
}

// stores reports whether a stream of b stores subject, or for a subject
// with a template, some subject beginning with its literal prefix.
func (p *Plugin) stores(b *broker, subject string) bool {
	prefix, templated := templatePrefix(subject)
	for _, s := range p.streamsOn(b) {
		for _, pat := range s.cfg.Subjects {
			if (!templated && subjectMatches(pat, subject)) || (templated && prefixMatches(pat, prefix)) {
				return true
			}
		}
	}
	return false
}

func describeSubject(subject string) string {
	if prefix, templated := templatePrefix(subject); templated {
		return fmt.Sprintf("subjects beginning %q (from %q)", prefix, subject)
	}
	return fmt.Sprintf("subject %q", subject)
}

// consumerRefs checks what a consumer's settings refer to on b: its stream,
// the stream of its dead letters, and whether its filters can match.
// fields maps a setting to the field it is written in.
func (c *checks) consumerRefs(b *broker, s consumerSettings, streamField string, filterFields []string) {
	sm := c.p.stream(b, s.Stream)
	switch {
	case sm == nil && c.p.isInvalid(TypeStream, s.Stream):
	case sm == nil:
		c.missing(b, streamField, "no %s module declares stream %q on broker %s (%s)", TypeStream, s.Stream, b.name, c.p.describeStreams(b))
	default:
		for i, f := range s.FilterSubjects {
			if !slices.ContainsFunc(sm.cfg.Subjects, func(pat string) bool { return subjectsCollide(pat, f) }) {
				c.warn(filterFields[i], "%q matches no subject of stream %s %v, so the consumer receives nothing", f, sm.cfg.Name, sm.cfg.Subjects)
			}
		}
	}
	if s.DeadLetter == "" {
		return
	}
	const dlField = "config.dead_letter_subject"
	dl := c.p.storing(b, s.DeadLetter)
	switch {
	case dl == nil && c.p.invalidStores(s.DeadLetter):
	case dl == nil:
		c.missing(b, dlField, "no stream on broker %s stores dead letters to %q (%s)", b.name, s.DeadLetter, c.p.describeStreams(b))
	case dl == sm && (len(s.FilterSubjects) == 0 || slices.ContainsFunc(s.FilterSubjects, func(f string) bool { return subjectMatches(f, s.DeadLetter) })):
		c.warn(dlField, "%q is stored in stream %s and matches this consumer, so every dead letter is delivered to the same pipeline again", s.DeadLetter, sm.cfg.Name)
	}
}

// filterFields names where each filter subject of a config is written:
// filter_subject first when set, then the filter_subjects.
func filterFields(one string, many []string) []string {
	var out []string
	if one != "" {
		out = append(out, "config.filter_subject")
	}
	for i := range many {
		out = append(out, fmt.Sprintf("config.filter_subjects[%d]", i))
	}
	return out
}
