package broker

// pageUsers lets the live page check HTTP basic credentials against the users of the -auth
// file, as a CONNECT's are checked.
func pageUsers(users *Users) func(user, password string) bool {
	return func(user, password string) bool {
		ok, _ := users.authenticate([]byte(user), []byte(password))
		return ok
	}
}
