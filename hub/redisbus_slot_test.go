package hub

import (
	"strings"
	"testing"
)

func TestKeySlot(t *testing.T) {
	const check = 0x31c3 // CRC16 of "123456789", the check value in the Redis Cluster spec
	for _, tc := range []struct {
		key  string
		want bool // hashes as "123456789"
	}{
		{"123456789", true},
		{"{123456789}.following", true}, // a hash tag
		{"foo{123456789}{bar}", true},   // the first tag only
		{"{}123456789", false},          // an empty tag: the whole key
		{"123456789{", false},           // no closing brace: the whole key
	} {
		if got := keySlot(tc.key) == check; got != tc.want {
			t.Errorf("keySlot(%q) = %#x: hashed as 123456789 %v, want %v", tc.key, keySlot(tc.key), got, tc.want)
		}
	}
	// From the first '{' to the next '}'.
	if got, want := keySlot("foo{{bar}}zap"), keySlot("{bar"); got != want {
		t.Errorf(`keySlot("foo{{bar}}zap") = %d, want keySlot("{bar") = %d`, got, want)
	}
}

func TestClusterTags(t *testing.T) {
	tags := clusterTags(clusterPartitions)
	if len(tags) != clusterPartitions {
		t.Fatalf("got %d tags, want %d", len(tags), clusterPartitions)
	}
	seen := map[string]bool{}
	for i, tag := range tags {
		if !strings.HasPrefix(tag, "{") || !strings.HasSuffix(tag, "}") || seen[tag] {
			t.Errorf("tag %d: %q is not a new hash tag", i, tag)
		}
		seen[tag] = true
		lo, hi := i*16384/clusterPartitions, (i+1)*16384/clusterPartitions
		if s := int(keySlot(tag + "tictac:game:x")); s < lo || s >= hi {
			t.Errorf("tag %d %s: slot %d outside [%d, %d)", i, tag, s, lo, hi)
		}
	}
}
