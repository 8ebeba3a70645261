package chain

// Before lists the modules of chain that module name comes after,
// directly or further back, nearest first: for a kind that checks where
// it stands (what passes before it) when it is built (Deps.Chain).
func Before(chain []ModuleConfig, name string) []string {
	after := map[string][]string{}
	for _, mc := range chain {
		after[mc.Name] = mc.After
	}
	var out []string
	seen := map[string]bool{name: true}
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, p := range after[n] {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
				queue = append(queue, p)
			}
		}
	}
	return out
}
