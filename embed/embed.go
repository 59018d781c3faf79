// Package embed holds every asset that is not Go code: page templates, static
// files (CSS, JavaScript, images) and, later, mail templates. They are compiled
// into the binary, so the appliance never fetches anything from outside.
package embed

import "embed"

// Templates holds the page templates; a template's name is its path without
// the extension (templates/setup/welcome.html defines "setup/welcome").
//
//go:embed templates
var Templates embed.FS

// Static holds the files served under /static/.
//
//go:embed static
var Static embed.FS

// Mail holds the notification templates: a layout and, for each kind, a pair
// mail/KIND.txt.tmpl and mail/KIND.html.tmpl defining subject, heading, body
// and action.
//
//go:embed mail
var Mail embed.FS
