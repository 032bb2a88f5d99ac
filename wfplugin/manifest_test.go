package wfplugin_test

import (
	"errors"
	"testing"

	"github.com/wfeventbus/eventbus/wfplugin"
)

func TestValidateManifest(t *testing.T) {
	t.Parallel()
	valid := wfplugin.Manifest{Name: "workflow-plugin-eventbus", Version: "1.2.3", Author: "a", Description: "d"}
	tests := []struct {
		name   string
		change func(*wfplugin.Manifest)
		ok     bool
	}{
		{"valid", func(*wfplugin.Manifest) {}, true},
		{"single letter", func(m *wfplugin.Manifest) { m.Name = "a" }, true},
		{"leading v", func(m *wfplugin.Manifest) { m.Version = "v0.0.1" }, true},
		{"digits in name", func(m *wfplugin.Manifest) { m.Name = "a1-b2" }, true},
		{"dev", func(m *wfplugin.Manifest) { m.Version = "dev" }, false},
		{"(devel)", func(m *wfplugin.Manifest) { m.Version = "(devel)" }, false},
		{"two parts", func(m *wfplugin.Manifest) { m.Version = "1.2" }, false},
		{"pre-release", func(m *wfplugin.Manifest) { m.Version = "1.2.3-rc.1" }, false},
		{"four parts", func(m *wfplugin.Manifest) { m.Version = "1.2.3.4" }, false},
		{"empty version", func(m *wfplugin.Manifest) { m.Version = "" }, false},
		{"uppercase name", func(m *wfplugin.Manifest) { m.Name = "Eventbus" }, false},
		{"leading hyphen", func(m *wfplugin.Manifest) { m.Name = "-a" }, false},
		{"trailing hyphen", func(m *wfplugin.Manifest) { m.Name = "a-" }, false},
		{"underscore", func(m *wfplugin.Manifest) { m.Name = "a_b" }, false},
		{"leading digit", func(m *wfplugin.Manifest) { m.Name = "1a" }, false},
		{"empty name", func(m *wfplugin.Manifest) { m.Name = "" }, false},
		{"blank author", func(m *wfplugin.Manifest) { m.Author = " " }, false},
		{"no description", func(m *wfplugin.Manifest) { m.Description = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := valid
			tt.change(&m)
			err := wfplugin.ValidateManifest(m)
			if tt.ok && err != nil {
				t.Fatalf("ValidateManifest(%+v): %v", m, err)
			}
			if !tt.ok && !errors.Is(err, wfplugin.ErrInvalidManifest) {
				t.Fatalf("ValidateManifest(%+v): %v, want ErrInvalidManifest", m, err)
			}
		})
	}
}
