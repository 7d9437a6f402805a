package api

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// webFS holds the dashboard (plain HTML, CSS and JS: no build step and no
// CDN, because hospital networks and our test machines are offline).
//
//go:embed web
var webFS embed.FS

// openAPISpec is the API description served at /openapi.yaml.
//
//go:embed openapi.yaml
var openAPISpec []byte

// contentSecurityPolicy allows only our own scripts, styles and API.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request, _ *Principal) {
	data, err := webFS.ReadFile("web/index.html")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "dashboard missing from build"})
		return
	}
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(data)
}

var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, _ *Principal) {
	name := r.PathValue("file")
	ct, ok := assetTypes[path.Ext(name)]
	if !ok || strings.Contains(name, "..") || name == "index.html" {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such asset"})
		return
	}
	data, err := fs.ReadFile(webFS, "web/"+name)
	if err != nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such asset"})
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ *Principal) {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(openAPISpec)
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request, _ *Principal) {
	if s.signer == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "this deployment verifies tokens from an external identity provider (api.auth.jwks_url)"})
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.signer.JWKS())
}
