package pxar

import "testing"

func TestTypeConstants(t *testing.T) {
	for _, c := range []struct {
		s    string
		want uint64
	}{
		{"__PROXMOX_FORMAT_VERSION__", TypeFormatVersion},
		{"__PROXMOX_FORMAT_ENTRY_V2__", TypeEntry},
		{"__PROXMOX_FORMAT_ENTRY__", TypeEntryV1},
		{"__PROXMOX_FORMAT_PRELUDE__", TypePrelude},
		{"__PROXMOX_FORMAT_FILENAME__", TypeFilename},
		{"__PROXMOX_FORMAT_SYMLINK__", TypeSymlink},
		{"__PROXMOX_FORMAT_DEVICE__", TypeDevice},
		{"__PROXMOX_FORMAT_XATTR__", TypeXattr},
		{"__PROXMOX_FORMAT_ACL_USER__", TypeACLUser},
		{"__PROXMOX_FORMAT_ACL_GROUP__", TypeACLGroup},
		{"__PROXMOX_FORMAT_ACL_GROUP_OBJ__", TypeACLGroupObj},
		{"__PROXMOX_FORMAT_ACL_DEFAULT__", TypeACLDefault},
		{"__PROXMOX_FORMAT_ACL_DEFAULT_USER__", TypeACLDefaultUser},
		{"__PROXMOX_FORMAT_ACL_DEFAULT_GROUP__", TypeACLDefaultGroup},
		{"__PROXMOX_FORMAT_FCAPS__", TypeFCaps},
		{"__PROXMOX_FORMAT_QUOTA_PROJID__", TypeQuotaProjID},
		{"__PROXMOX_FORMAT_HARDLINK__", TypeHardlink},
		{"__PROXMOX_FORMAT_PXAR_PAYLOAD__", TypePayload},
		{"__PROXMOX_FORMAT_PXAR_PAYLOAD_REF__", TypePayloadRef},
		{"__PROXMOX_FORMAT_GOODBYE__", TypeGoodbye},
		{"__PROXMOX_FORMAT_PXAR_GOODBYE_TAIL_MARKER__", GoodbyeTailMarker},
		{"__PROXMOX_FORMAT_PXAR_PAYLOAD_START_MARKER__", TypePayloadStartMarker},
		{"__PROXMOX_FORMAT_PXAR_PAYLOAD_TAIL_MARKER__", TypePayloadTailMarker},
	} {
		if got := HashFilename([]byte(c.s)); got != c.want {
			t.Errorf("hash(%q) = %#016x, constant is %#016x", c.s, got, c.want)
		}
	}
}

func TestHashFilename(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0x76614015f8d1bb6c},
		{"a", 0x0c26e9067c2c7bcf},
		{"file_0", 0xa72d4eec8843fa66},
		{"folder_0", 0xe093b923517a4b01},
		{"README.txt", 0x3235c65cfb8f9878},
	} {
		if got := HashFilename([]byte(c.in)); got != c.want {
			t.Errorf("HashFilename(%q) = %#016x, want %#016x", c.in, got, c.want)
		}
	}
}
