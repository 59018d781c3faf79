package message

// Event tells a signed-in user's pages that their mailbox changed: a new
// message, a read, a move. It carries counts only, never content.
type Event struct {
	Counts map[Folder]Counts
}

// Subscribe delivers uid's mailbox changes until cancel is called. A slow
// reader misses events rather than holding up a send.
func (s *Service) Subscribe(uid string) (events <-chan Event, cancel func()) {
	ch := make(chan Event, 4)
	s.mu.Lock()
	if s.subs[uid] == nil {
		s.subs[uid] = map[chan Event]struct{}{}
	}
	s.subs[uid][ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs[uid], ch)
		if len(s.subs[uid]) == 0 {
			delete(s.subs, uid)
		}
		s.mu.Unlock()
	}
}

// publish tells uid's subscribers, after a commit.
func (s *Service) publish(uid string) {
	if uid == "" {
		return
	}
	s.mu.Lock()
	n := len(s.subs[uid])
	s.mu.Unlock()
	if n == 0 {
		return
	}
	c, err := s.Counts(uid)
	if err != nil {
		s.log.Warn().Err(err).Msg("read counts for an event")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs[uid] {
		select {
		case ch <- Event{Counts: c}:
		default:
		}
	}
}
