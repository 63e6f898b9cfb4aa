package store

import (
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// TestCompact: the changes kept while commits fail, compacted, leave a data file as all of them
// would; a key set again and again is kept once.
func TestCompact(t *testing.T) {
	put := func(key, client, v string) change {
		return change{key: key, value: fmt.Appendf(nil, `{"client":%q,"v":%q}`, client, v), owner: client}
	}
	del := func(key string) change { return change{key: key} }
	drop := func(client string) change { return change{client: client} }
	retained, sub, msg := retainedKey("t"), subscriptionKey("c", "a/#"), inflightKey("c", 7)
	for _, c := range []struct {
		name    string
		changes []change
		kept    int
	}{
		{"a retained topic set again and again", []change{put(retained, "p", "1"), put(retained, "p", "2"), put(retained, "p", "3")}, 1},
		{"set, then deleted", []change{put(retained, "p", "1"), del(retained)}, 1},
		{"deleted, then set", []change{del(retained), put(retained, "p", "2")}, 1},
		{"a session dropped after its records", []change{put(sub, "c", "1"), put(msg, "c", "1"), drop("c")}, 3},
		{"a session dropped, then subscribing again", []change{put(sub, "c", "1"), drop("c"), put(sub, "c", "2")}, 2},
		{"dropped twice around new records", []change{put(msg, "c", "1"), drop("c"), put(msg, "c", "2"), put(sub, "c", "1"),
			drop("c"), put(sub, "c", "2")}, 3},
		{"other keys between", []change{put(retained, "p", "1"), put(sub, "c", "1"), put(retained, "p", "2"), del(sub)}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			compacted := compact(c.changes)
			if len(compacted) != c.kept {
				t.Errorf("kept %d changes, want %d", len(compacted), c.kept)
			}
			if all, some := applied(t, c.changes), applied(t, compacted); !maps.Equal(all, some) {
				t.Errorf("compacted, the file holds %v; all the changes leave %v", some, all)
			}
		})
	}
}

// applied applies changes to a new data file that already holds a record of each kind for
// client c, and returns what it then holds.
func applied(t *testing.T, changes []change) map[string]string {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), DataFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := []change{
		{key: clientKey("c"), value: []byte(`{"id":"c"}`)},
		{key: subscriptionKey("c", "old/#"), value: []byte(`{"client":"c"}`), owner: "c"},
		{key: retainedKey("old"), value: []byte(`{"client":"p"}`)},
	}
	held := map[string]string{}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucket)
		if err != nil {
			return err
		}
		if err := apply(b, before); err != nil {
			return err
		}
		if err := apply(b, changes); err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error { held[string(k)] = string(v); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return held
}
