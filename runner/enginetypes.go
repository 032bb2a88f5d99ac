package runner

// engineStepTypes returns the 159 step types the engine registers
// (engine-pipelines.md §3.17), sorted. A config that uses one eventbus run
// does not implement is rejected, never run with the step skipped.
func engineStepTypes() []string {
	return []string{
		"step.actor_ask", "step.actor_send", "step.ai_classify", "step.ai_complete", "step.ai_extract",
		"step.app_deploy", "step.app_rollback", "step.app_status", "step.argo_delete", "step.argo_list",
		"step.argo_logs", "step.argo_status", "step.argo_submit", "step.artifact_delete",
		"step.artifact_download", "step.artifact_list", "step.artifact_pull", "step.artifact_push",
		"step.artifact_upload", "step.auth_validate", "step.authz_check", "step.base64_decode",
		"step.branch", "step.build_binary", "step.build_from_config", "step.build_ui",
		"step.cache_delete", "step.cache_get", "step.cache_set", "step.circuit_breaker",
		"step.cli_invoke", "step.cli_print", "step.cloud_validate", "step.codebuild_create_project",
		"step.codebuild_delete_project", "step.codebuild_list_builds", "step.codebuild_logs",
		"step.codebuild_start", "step.codebuild_status", "step.conditional", "step.container_build",
		"step.db_create_partition", "step.db_exec", "step.db_query", "step.db_query_cached",
		"step.db_sync_partitions", "step.delegate", "step.deploy", "step.deploy_blue_green",
		"step.deploy_canary", "step.deploy_rollback", "step.deploy_rolling", "step.deploy_verify",
		"step.dlq_replay", "step.dlq_send", "step.dns_apply", "step.dns_plan", "step.dns_status",
		"step.docker_build", "step.docker_push", "step.docker_run", "step.event_decrypt",
		"step.event_publish", "step.feature_flag", "step.ff_gate", "step.field_reencrypt", "step.foreach",
		"step.gate", "step.git_checkout", "step.git_clone", "step.git_commit", "step.git_push",
		"step.git_tag", "step.graphql", "step.hash", "step.http_call", "step.http_proxy",
		"step.iac_apply", "step.iac_commit_back", "step.iac_destroy", "step.iac_drift_detect",
		"step.iac_plan", "step.iac_provider_apply", "step.iac_provider_catalog",
		"step.iac_provider_destroy", "step.iac_provider_drift", "step.iac_provider_list",
		"step.iac_provider_plan", "step.iac_provider_reconcile", "step.iac_secret_reachability",
		"step.iac_status", "step.jq", "step.json_parse", "step.json_response", "step.k8s_apply",
		"step.k8s_destroy", "step.k8s_plan", "step.k8s_status", "step.log", "step.marketplace_detail",
		"step.marketplace_install", "step.marketplace_installed", "step.marketplace_search",
		"step.marketplace_uninstall", "step.marketplace_update", "step.nosql_delete", "step.nosql_get",
		"step.nosql_put", "step.nosql_query", "step.parallel", "step.pipeline_output",
		"step.platform_template", "step.policy_evaluate", "step.policy_list", "step.policy_load",
		"step.policy_test", "step.publish", "step.rate_limit", "step.raw_response", "step.regex_match",
		"step.region_deploy", "step.region_failover", "step.region_promote", "step.region_status",
		"step.region_sync", "step.region_weight", "step.request_parse", "step.resilient_circuit_breaker",
		"step.response", "step.retry_with_backoff", "step.sandbox_exec", "step.scan_container",
		"step.scan_deps", "step.scan_sast", "step.secret_fetch", "step.secret_rotate", "step.secret_set",
		"step.set", "step.shell_exec", "step.statemachine_get", "step.statemachine_transition",
		"step.static_file", "step.sub_workflow", "step.token_revoke", "step.trace_annotate",
		"step.trace_extract", "step.trace_inject", "step.trace_link", "step.trace_start",
		"step.transform", "step.ui_scaffold", "step.ui_scaffold_analyze", "step.validate",
		"step.validate_pagination", "step.validate_path_param", "step.validate_request_body",
		"step.webhook_verify", "step.while", "step.workflow_call",
	}
}
