// Package runner is the standalone host of eventbus pipelines: it reads an
// app config in the workflow engine's shape, validates it against what a
// plugin declares, drives the plugin through the engine's lifecycle and
// runs a pipeline each time a trigger fires.
//
// The app config is the engine's YAML:
//
//	modules:
//	  - name: bus
//	    type: eventbus.broker
//	pipelines:
//	  orders:
//	    trigger:
//	      type: trigger.eventbus.subscribe
//	      config: { name: orders-worker, broker_ref: bus }
//	    steps:
//	      - name: log
//	        type: step.log
//	        config: { message: "order {{ .trigger.payload.id }}" }
//
// Load and Parse read it as the engine does (engine-pipelines.md §1):
// ${NAME} and ${env:NAME} expanded in module configs only, with the
// engine's rules; {{config "key"}} replaced when a config.provider module
// is declared. They report every structural problem with file, line and
// field, and collect as warnings what the engine silently ignores.
// Validate checks a config against a Catalog (the plugin's type lists and
// typed contracts) and the engine built-in steps the runner implements.
// Check and CheckFile do both in one pass, so that every problem of a file
// is reported at once.
//
// A Runner drives a Plugin, the small interface through which it reaches a
// plugin process: New validates the config and builds the pipelines;
// Prepare also creates and initialises modules, steps and triggers in the
// engine's order without starting any, so that every problem the plugin's
// own checks find is reported at once, with file and line, before
// anything runs (a host validates an app this way, and starts it the same
// way); Start creates (unless Prepare did) and starts them,
// TriggerWorkflow runs a pipeline to completion (the plugin's triggers
// call it), and Stop stops triggers, lets in-flight runs finish and stops
// modules in reverse.
//
// Pipelines behave as in the engine (engine-pipelines.md §2–§5): templates
// are Go text/template with the engine's function map, preceded by
// ${ expression } blocks (expr-lang); the dot holds the current data at
// the top level and .steps, .trigger and .meta; a missing key renders
// "<no value>"; rendered values are always strings; each step's output is
// merged into the current data and kept under steps.NAME; errors read as
// the engine words them.
package runner
