package s3store_test

import (
	"testing"

	"pbsfs/demo"
	"pbsfs/s3store"
)

// The tests of package s3store upload the demo store, but cannot import
// package demo (demo → datastore → s3store would be a cycle in their
// test binary); this external test package can, and hands it to them.
func init() {
	s3store.WriteSampleStore = func(dir string) error {
		_, err := demo.Sample(dir)
		return err
	}
}

func TestSampleVMName(t *testing.T) {
	if got := s3store.SampleVMForTest; got != demo.SampleVM {
		t.Errorf("s3store's tests use %q as demo.SampleVM, which is %q", got, demo.SampleVM)
	}
}
