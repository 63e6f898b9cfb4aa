package broker

// pageUsers lets the live page check HTTP basic credentials against the users of the -auth
// file in force (users returns them; a reload takes effect at once), as a CONNECT's are checked.
func pageUsers(users func() *Users) func(user, password string) bool {
	return func(user, password string) bool {
		u := users()
		if u == nil {
			return false
		}
		ok, _ := u.authenticate([]byte(user), []byte(password))
		return ok
	}
}
