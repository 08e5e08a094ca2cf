//! `payledger topics apply` made the cluster match the declaration (scripts/test runs it
//! before the tests; running it again here proves it idempotent).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use ledger::kafka::Role;
use ledger::kafka::topics::{self, TOPICS, TopicOutcome};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use support::stack;

#[tokio::test]
async fn the_cluster_holds_the_declared_topics_and_apply_is_idempotent() {
    let admin_settings = stack().kafka(Role::Admin);
    let outcomes = topics::apply(&admin_settings).await.expect("apply");
    assert_eq!(outcomes.len(), TOPICS.len());
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, TopicOutcome::Updated { .. })),
        "a second apply creates nothing: {outcomes:?}"
    );

    let admin: AdminClient<DefaultClientContext> = admin_settings.base().create().unwrap();
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .unwrap();
    let specifiers: Vec<ResourceSpecifier<'_>> = TOPICS
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.name))
        .collect();
    let described = admin
        .describe_configs(&specifiers, &AdminOptions::new())
        .await
        .unwrap();
    for (spec, result) in TOPICS.iter().zip(described) {
        assert_eq!(
            topics::partition_count(&metadata, spec.name),
            Some(spec.partitions),
            "{}",
            spec.name
        );
        let config: HashMap<String, String> = result
            .unwrap_or_else(|e| panic!("{}: {e:?}", spec.name))
            .entries
            .into_iter()
            .filter_map(|e| Some((e.name, e.value?)))
            .collect();
        for (key, value) in spec.config {
            assert_eq!(
                config.get(*key).map(String::as_str),
                Some(*value),
                "{} {key}",
                spec.name
            );
        }
        assert_eq!(
            config.get("min.insync.replicas").map(String::as_str),
            Some("1"),
            "single-node stack"
        );
    }
}
