package access

import (
	"bytes"
	"slices"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// claims are the connections between their CONNECT's check (OnConnect) and their session's
// set-up (OnSessionEstablished), by client id. Until mochi registers the session, its id is free
// in mochi's eyes: two users connecting at once with a new id would both pass the ownership
// check, and the later would take over the session just made. A claim keeps the id the first
// user's meanwhile; the same user's connections share it (a take-over of one's own session is
// allowed).
//
// A connection that fails before its session is set up (refused by a later hook, or gone before
// its CONNACK) is closed by mochi: its claim counts no more, and is pruned.
type claims struct {
	mu      sync.Mutex
	byID    map[string][]*mqtt.Client // one user's connections, in the order of their CONNECT
	pruneAt int                       // prune every id when the map is this large
}

// minPrune is the size of the claims map at which the claims of closed connections are first
// pruned; then at twice the size left.
const minPrune = 64

// take checks that cl's client id is neither another user's session nor being set up for another
// user, and claims it for cl. existing is the session cl will resume or take over, if any; owner
// the other user when it is refused.
func (c *claims) take(server *mqtt.Server, cl *mqtt.Client) (existing *mqtt.Client, owner []byte, ok bool) {
	user := cl.Properties.Username
	c.mu.Lock()
	defer c.mu.Unlock()
	live := open(c.byID[cl.ID])
	if len(live) > 0 && !bytes.Equal(live[0].Properties.Username, user) {
		return nil, live[0].Properties.Username, false
	}
	// Looked up under the lock: a claim is released only once its session is registered.
	existing, found := server.Clients.Get(cl.ID)
	if found && !bytes.Equal(existing.Properties.Username, user) {
		return nil, existing.Properties.Username, false
	}
	if c.byID == nil {
		c.byID = make(map[string][]*mqtt.Client)
	}
	c.byID[cl.ID] = append(live, cl)
	if len(c.byID) >= max(c.pruneAt, minPrune) {
		for id, conns := range c.byID {
			if live := open(conns); len(live) > 0 {
				c.byID[id] = live
			} else {
				delete(c.byID, id)
			}
		}
		c.pruneAt = 2 * len(c.byID)
	}
	return existing, nil, true
}

// release ends cl's claim: its session is registered.
func (c *claims) release(cl *mqtt.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conns := slices.DeleteFunc(c.byID[cl.ID], func(o *mqtt.Client) bool { return o == cl || o.Closed() })
	if len(conns) == 0 {
		delete(c.byID, cl.ID)
		return
	}
	c.byID[cl.ID] = conns
}

// open returns the connections of conns that are not closed, in a new slice.
func open(conns []*mqtt.Client) []*mqtt.Client {
	var live []*mqtt.Client
	for _, cl := range conns {
		if !cl.Closed() {
			live = append(live, cl)
		}
	}
	return live
}
