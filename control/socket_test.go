package control

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The socket goes only into a directory that nobody else may write to, or one with the sticky
// bit: elsewhere another user could replace it with a socket of theirs.
func TestListenAtRefusesADirectoryOthersMayWrite(t *testing.T) {
	for mode, ok := range map[os.FileMode]bool{0o700: true, 0o755: true, 0o777: false, 0o775: false, 0o777 | os.ModeSticky: true} {
		dir := filepath.Join(t.TempDir(), "tender")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		ln, err := listenAt(filepath.Join(dir, "control.sock"))
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "writable by others")) {
			t.Errorf("mode %v: %v, want ok=%v", mode, err, ok)
		}
		if ln != nil {
			ln.Close()
		}
	}
}
