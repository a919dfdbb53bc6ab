package s3store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3.cfg")
	if err := os.WriteFile(cfg, []byte(sampleS3Cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds")
	if err := os.WriteFile(creds, []byte("access-key FILEKEY\nsecret-key FILESECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")

	e, err := EndpointFlags{URL: "http://127.0.0.1:9000", Region: "eu", PathStyle: true}.Resolve("b")
	if err != nil || e.URL != "http://127.0.0.1:9000" || e.Region != "eu" || !e.PathStyle || e.Credentials.AccessKey != "ENVKEY" {
		t.Errorf("flags + env: %+v, %v", e, err)
	}
	e, err = EndpointFlags{URL: "http://h", Credentials: creds}.Resolve("b")
	if err != nil || e.Credentials.AccessKey != "FILEKEY" || e.Credentials.SecretKey.Reveal() != "FILESECRET" {
		t.Errorf("credentials file: %+v, %v", e, err)
	}
	e, err = EndpointFlags{Config: cfg, Client: "local"}.Resolve("b")
	if err != nil || e.URL != "https://192.168.1.10:9000" || !e.PathStyle || e.Credentials.AccessKey != "minio" {
		t.Errorf("s3.cfg: %+v, %v", e, err)
	}
	e, err = EndpointFlags{Config: cfg, Client: "aws", Region: "us-west-2", Credentials: creds}.Resolve("b")
	if err != nil || e.Region != "us-west-2" || e.Credentials.AccessKey != "FILEKEY" {
		t.Errorf("s3.cfg with overrides: %+v, %v", e, err)
	}
	for name, f := range map[string]EndpointFlags{
		"no endpoint":     {},
		"config alone":    {Config: cfg},
		"client alone":    {Client: "aws"},
		"unknown client":  {Config: cfg, Client: "nope"},
		"bad fingerprint": {URL: "https://h", Fingerprint: "12:34"},
		"bad URL":         {URL: "ftp://h"},
	} {
		if _, err := f.Resolve("b"); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "sEcReT") {
			t.Errorf("%s: error shows a secret: %v", name, err)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := (EndpointFlags{URL: "http://h"}).Resolve("b"); err == nil || !strings.Contains(err.Error(), "no S3 credentials") {
		t.Errorf("no credentials: %v", err)
	}
}
