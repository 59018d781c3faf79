// Package fault gives errors two audiences: a short message that is safe to
// show to a user, a browser or an SMTP client, and the cause, which goes only
// to the log. Handlers map a Kind to a status code; they never show Cause.
package fault

import (
	"errors"
	"fmt"
)

// Kind says what went wrong in terms a caller can act on.
type Kind int

// The kinds, from the caller's point of view.
const (
	Internal    Kind = iota // a defect or an unexpected condition; details only in the log
	Invalid                 // the input is wrong; the message says how
	Permission              // the caller may not do this
	NotFound                // the object does not exist (or the caller may not know it does)
	Conflict                // the object changed or already exists
	TooLarge                // the input is over a configured limit
	Unavailable             // try again later: a dependency or the disk is not ready
)

var kindNames = [...]string{"internal", "invalid", "permission", "not_found", "conflict", "too_large", "unavailable"}

// String returns the snake_case name used in logs and metrics.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an error with a kind, a safe message and an optional cause.
type Error struct {
	Kind    Kind
	Message string // safe to show; no secrets, no content, no configuration details
	Cause   error  // for the log only
}

// E builds an *Error. cause may be nil.
func E(kind Kind, message string, cause error) *Error {
	return &Error{Kind: kind, Message: message, Cause: cause}
}

// Error returns the safe message followed by the cause, for logs.
func (e *Error) Error() string {
	if e.Cause == nil {
		return e.Message
	}
	return e.Message + ": " + e.Cause.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}

// Message returns the safe message of the first *Error in err's chain, or a
// generic text that reveals nothing.
func Message(err error) string {
	var fe *Error
	if errors.As(err, &fe) && fe.Kind != Internal {
		return fe.Message
	}
	return "an internal error occurred"
}
