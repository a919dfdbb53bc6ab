package pxar

import (
	"encoding/binary"
	"sort"
)

// Names of the xattrs derived from FCAPS and ACL items.
const (
	XattrCapability = "security.capability"
	XattrACLAccess  = "system.posix_acl_access"
	XattrACLDefault = "system.posix_acl_default"
)

// Tags and the version of the kernel's posix_acl xattr encoding
// (include/uapi/linux/posix_acl.h, posix_acl_xattr.h).
const (
	aclXattrVersion = 2
	aclTagUserObj   = 0x01
	aclTagUser      = 0x02
	aclTagGroupObj  = 0x04
	aclTagGroup     = 0x08
	aclTagMask      = 0x10
	aclTagOther     = 0x20
	aclUndefinedID  = 0xffffffff
)

// XattrNames lists the entry's extended attribute names: the archived
// xattrs, then security.capability if it has file capabilities, then
// system.posix_acl_access / system.posix_acl_default if it has those ACLs.
func (e *Entry) XattrNames() []string {
	names := make([]string, 0, len(e.Xattrs)+3)
	seen := make(map[string]bool, len(e.Xattrs)+3)
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, x := range e.Xattrs {
		add(x.Name)
	}
	if e.FCaps != nil {
		add(XattrCapability)
	}
	if e.ACL.hasAccess() {
		add(XattrACLAccess)
	}
	if e.ACL.hasDefault() {
		add(XattrACLDefault)
	}
	return names
}

// HasXattrs reports whether XattrNames would list anything, without
// allocating.
func (e *Entry) HasXattrs() bool {
	return len(e.Xattrs) > 0 || e.FCaps != nil || e.ACL.hasAccess() || e.ACL.hasDefault()
}

// Xattr returns the value of the named extended attribute. ACLs are
// returned in the kernel's posix_acl xattr encoding (what getxattr(2) gives
// getfacl, cp -a and rsync -aAX), capabilities raw.
func (e *Entry) Xattr(name string) ([]byte, bool) {
	switch name {
	case XattrCapability:
		if e.FCaps != nil {
			return append([]byte(nil), e.FCaps...), true
		}
	case XattrACLAccess:
		if e.ACL.hasAccess() {
			return e.ACL.accessXattr(e.Mode), true
		}
	case XattrACLDefault:
		if e.ACL.hasDefault() {
			return e.ACL.defaultXattr(), true
		}
	}
	for _, x := range e.Xattrs {
		if x.Name == name {
			return []byte(x.Value), true
		}
	}
	return nil, false
}

func (acl *ACL) hasAccess() bool {
	return len(acl.Users) > 0 || len(acl.Groups) > 0 || acl.GroupObj != nil
}

// hasDefault: a default ACL needs its base entries (ACL_DEFAULT); named
// default entries without them cannot form a valid ACL and are not shown.
func (acl *ACL) hasDefault() bool { return acl.Default != nil }

type aclXattrEntry struct {
	tag  uint16
	perm uint16
	id   uint32
}

// accessXattr encodes the access ACL the way the kernel does. USER_OBJ and
// OTHER come from the mode; with GROUP_OBJ archived the mode's group bits
// are the MASK, otherwise they are GROUP_OBJ (and, should named entries
// exist without a mask, also the MASK, as PBS's extractor restores it).
func (acl *ACL) accessXattr(mode uint64) []byte {
	ents := []aclXattrEntry{{tag: aclTagUserObj, perm: perm(mode >> 6), id: aclUndefinedID}}
	ents = appendNamed(ents, aclTagUser, acl.Users)
	group := perm(mode >> 3)
	named := len(acl.Users) > 0 || len(acl.Groups) > 0
	if acl.GroupObj != nil {
		ents = append(ents, aclXattrEntry{tag: aclTagGroupObj, perm: perm(*acl.GroupObj), id: aclUndefinedID})
	} else {
		ents = append(ents, aclXattrEntry{tag: aclTagGroupObj, perm: group, id: aclUndefinedID})
	}
	ents = appendNamed(ents, aclTagGroup, acl.Groups)
	if acl.GroupObj != nil || named {
		ents = append(ents, aclXattrEntry{tag: aclTagMask, perm: group, id: aclUndefinedID})
	}
	ents = append(ents, aclXattrEntry{tag: aclTagOther, perm: perm(mode), id: aclUndefinedID})
	return encodeACLXattr(ents)
}

// defaultXattr encodes the default ACL. Its MASK is archived; when it is
// missing although named entries exist, the union of the group class is
// used (what setfacl computes), so the ACL stays valid.
func (acl *ACL) defaultXattr() []byte {
	d := acl.Default
	ents := []aclXattrEntry{{tag: aclTagUserObj, perm: perm(d.UserObj), id: aclUndefinedID}}
	ents = appendNamed(ents, aclTagUser, acl.DefaultUsers)
	ents = append(ents, aclXattrEntry{tag: aclTagGroupObj, perm: perm(d.GroupObj), id: aclUndefinedID})
	ents = appendNamed(ents, aclTagGroup, acl.DefaultGroups)
	switch {
	case d.Mask != ACLNoMask:
		ents = append(ents, aclXattrEntry{tag: aclTagMask, perm: perm(d.Mask), id: aclUndefinedID})
	case len(acl.DefaultUsers) > 0 || len(acl.DefaultGroups) > 0:
		m := perm(d.GroupObj)
		for _, u := range acl.DefaultUsers {
			m |= perm(u.Perm)
		}
		for _, g := range acl.DefaultGroups {
			m |= perm(g.Perm)
		}
		ents = append(ents, aclXattrEntry{tag: aclTagMask, perm: m, id: aclUndefinedID})
	}
	ents = append(ents, aclXattrEntry{tag: aclTagOther, perm: perm(d.Other), id: aclUndefinedID})
	return encodeACLXattr(ents)
}

func perm(p uint64) uint16 { return uint16(p & 7) }

// appendNamed appends named entries sorted by id, as the kernel requires.
func appendNamed(ents []aclXattrEntry, tag uint16, named []ACLEntry) []aclXattrEntry {
	start := len(ents)
	for _, n := range named {
		ents = append(ents, aclXattrEntry{tag: tag, perm: perm(n.Perm), id: uint32(n.ID)})
	}
	s := ents[start:]
	sort.SliceStable(s, func(i, j int) bool { return s[i].id < s[j].id })
	return ents
}

func encodeACLXattr(ents []aclXattrEntry) []byte {
	b := make([]byte, 4, 4+8*len(ents))
	binary.LittleEndian.PutUint32(b, aclXattrVersion)
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}
