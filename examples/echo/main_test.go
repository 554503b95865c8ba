package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestEchoReturnsHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(handler))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/a/b?x=1", nil)
	req.Header.Set("X-Portcullis-Subject", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got echoed
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Path != "/a/b" || got.Query != "x=1" || got.Headers["X-Portcullis-Subject"][0] != "alice" {
		t.Fatalf("echo: %+v", got)
	}
}
