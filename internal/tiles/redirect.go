package tiles

import (
	"net/http"
	"strings"
)

// NewRedirect returns a handler that answers each tlog-tiles request
// (checkpoint, tile, entry bundle) with a 302 to the same path under base,
// for a log whose objects are served by a bucket or a CDN. Anything else
// gets the same 404 and 405 answers as NewHandler's.
func NewRedirect(base string) http.Handler {
	return redirect{base: strings.TrimSuffix(base, "/")}
}

type redirect struct{ base string }

func (h redirect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, ok := requested(w, r)
	if !ok {
		return
	}
	// The target changes as the log grows (the checkpoint), so the
	// redirect itself is not cached.
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, h.base+"/"+res.path, http.StatusFound)
}
