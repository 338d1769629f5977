package pages

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// Every field /api/v1/kills can write is in docs/kills.md's tables: a field
// added to the JSON without its row fails here.
func TestKillsAPIFieldsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/kills.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `") {
			rows = append(rows, strings.SplitN(line, " | ", 2)[0])
		}
	}
	documented := func(name string) bool {
		for _, r := range rows {
			if strings.Contains(r, "`"+name+"`") {
				return true
			}
		}
		return false
	}
	for _, v := range []any{APIKill{}, APIHeld{}, APIProcess{}, APIContainer{}, APIBefore{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !documented(name) {
				t.Errorf("%s.%s: the field %q has no row in docs/kills.md", typ.Name(), typ.Field(i).Name, name)
			}
		}
	}
}
