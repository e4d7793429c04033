package store

// Loads returns how many games s has read from the database.
func (s *Rethink) Loads() int64 { return s.loads.Load() }
