//! Health, reflection and shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::contract;
use crate::helpers::{Options, TestDatabase, spawn_app, spawn_on};

contract! {
    async fn every_service_is_serving_once_the_database_is_migrated(backend: Backend) {
        let app = spawn_app(&backend).await;
        for service in ["", "leadgate.v1.LeadService", "leadgate.v1.AuditService", "leadgate.v1.PolicyService", "leadgate.v1.ReportService", "liveness"] {
            assert_eq!(app.health_of(service).await, ServingStatus::Serving, "{service:?}");
        }
        // Migrations created the schema: the server stored nothing but the policy activation.
        assert_eq!(app.db.leads().await, 0);
    }

    async fn shutdown_turns_readiness_off_before_draining(backend: Backend) {
        let mut app = spawn_app(&backend).await;
        let mut watch = app
            .health
            .clone()
            .watch(HealthCheckRequest { service: String::new() })
            .await
            .unwrap()
            .into_inner();
        let first = watch.next().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32);
        app.begin_shutdown();
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("a status change").unwrap().unwrap();
        assert_eq!(next.status, ServingStatus::NotServing as i32);
        drop(watch);
        tokio::time::timeout(Duration::from_secs(10), app.stop()).await.expect("the server stops").unwrap();
    }

    async fn reflection_describes_the_contract(backend: Backend) {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;

        let app = spawn_app(&backend).await;
        let mut client = ServerReflectionClient::new(app.channel.clone());
        let requests = tokio_stream::iter(vec![
            ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol("leadgate.v1.LeadService".into())),
            },
        ]);
        let mut responses = client.server_reflection_info(requests).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response else {
            panic!("a service list");
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        for expected in ["leadgate.v1.LeadService", "leadgate.v1.AuditService", "leadgate.v1.PolicyService", "leadgate.v1.ReportService", "grpc.health.v1.Health"] {
            assert!(names.contains(&expected.to_string()), "{expected} in {names:?}");
        }
        let Some(MessageResponse::FileDescriptorResponse(files)) = responses.next().await.unwrap().unwrap().message_response else {
            panic!("the file describing LeadService");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
}

#[tokio::test]
async fn readiness_stays_off_while_the_database_cannot_be_reached() {
    // Nothing listens on port 1: the server starts, stays alive, and is not ready.
    let db = Arc::new(TestDatabase::unreachable_postgres());
    let mut app = spawn_on(db, Options::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.health_of("").await, ServingStatus::NotServing);
    assert_eq!(
        app.health_of("leadgate.v1.LeadService").await,
        ServingStatus::NotServing
    );
    assert_eq!(app.health_of("liveness").await, ServingStatus::Serving);
    let status = app
        .leads
        .get_lead(leadgate::grpc::pb::GetLeadRequest {
            name: "leads/00000000-0000-0000-0000-000000000001".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops")
        .unwrap();
}
