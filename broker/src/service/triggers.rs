//! `paxlog.v1.Triggers`: function trigger definitions, through the metadata group.

use super::{ClientApi, timeout_of};
use crate::error::Error;
use crate::metadata::{Applied, Function, MetaCommand, TriggerDef};
use crate::security::{Action, Principal};
use paxlog_proto::v1::{self as pb, triggers_server::Triggers};
use tonic::{Request, Response, Status};

/// A definition from a create request: given settings over the defaults.
fn from_request(t: pb::Trigger) -> Result<TriggerDef, Error> {
    let function = match (t.http_url.is_empty(), t.command.is_empty()) {
        (false, true) => Function::Http(t.http_url),
        (true, false) => Function::Command(t.command),
        _ => {
            return Err(Error::InvalidRequest(
                "a trigger needs exactly one function: an http_url or a command".into(),
            ));
        }
    };
    let mut d = TriggerDef::with_defaults(t.name, t.topic, function);
    d.batch_size = t.batch_size.unwrap_or(d.batch_size);
    d.batch_window_ms = t.batch_window_ms.unwrap_or(d.batch_window_ms);
    d.start_position = t.start_position.unwrap_or(d.start_position);
    d.max_retries = t.max_retries.unwrap_or(d.max_retries);
    d.retry_backoff_ms = t.retry_backoff_ms.unwrap_or(d.retry_backoff_ms);
    d.retry_backoff_max_ms = t
        .retry_backoff_max_ms
        .unwrap_or(d.retry_backoff_max_ms.max(d.retry_backoff_ms));
    d.max_record_age_ms = t.max_record_age_ms.unwrap_or(d.max_record_age_ms);
    d.bisect_on_error = t.bisect_on_error.unwrap_or(d.bisect_on_error);
    d.dead_letter_topic = t.dead_letter_topic.unwrap_or(d.dead_letter_topic);
    d.concurrency_max = t.concurrency_max.unwrap_or(d.concurrency_max);
    d.function_timeout_ms = t.function_timeout_ms.unwrap_or(d.function_timeout_ms);
    d.output_topic = t.output_topic.unwrap_or(d.output_topic);
    Ok(d)
}

/// The wire form, every field set.
fn to_wire(d: &TriggerDef) -> pb::Trigger {
    let (http_url, command) = match &d.function {
        Function::Http(url) => (url.clone(), String::new()),
        Function::Command(cmd) => (String::new(), cmd.clone()),
    };
    pb::Trigger {
        name: d.name.clone(),
        topic: d.topic.clone(),
        http_url,
        command,
        batch_size: Some(d.batch_size),
        batch_window_ms: Some(d.batch_window_ms),
        start_position: Some(d.start_position.clone()),
        max_retries: Some(d.max_retries),
        retry_backoff_ms: Some(d.retry_backoff_ms),
        retry_backoff_max_ms: Some(d.retry_backoff_max_ms),
        max_record_age_ms: Some(d.max_record_age_ms),
        bisect_on_error: Some(d.bisect_on_error),
        dead_letter_topic: Some(d.dead_letter_topic.clone()),
        concurrency_max: Some(d.concurrency_max),
        function_timeout_ms: Some(d.function_timeout_ms),
        output_topic: Some(d.output_topic.clone()),
        paused: d.paused,
    }
}

impl ClientApi {
    async fn change_trigger(&self, cmd: MetaCommand, timeout_ms: u32) -> Result<TriggerDef, Error> {
        match self.change_metadata(cmd, timeout_of(timeout_ms)).await? {
            Applied::Trigger(t) => Ok(t),
            Applied::Refused(e) => Err(Error::Meta(e)),
            _ => Err(Error::InvalidRequest("unexpected result".into())),
        }
    }

    /// Managing a trigger needs admin on its topic; for an unknown trigger (answered
    /// NOT_FOUND later) admin on some topic.
    fn require_trigger_admin(&self, caller: &Principal, name: &str) -> Result<(), Error> {
        let topic = (self.inner.view.metadata().triggers())
            .find(|t| t.name == name)
            .map(|t| t.topic.clone());
        match topic {
            Some(topic) => caller.require(Action::Admin, &topic),
            None => caller.require_any(Action::Admin),
        }
    }
}

#[tonic::async_trait]
impl Triggers for ClientApi {
    async fn create_trigger(
        &self,
        request: Request<pb::CreateTriggerRequest>,
    ) -> Result<Response<pb::CreateTriggerResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let trigger = r
            .trigger
            .ok_or_else(|| Error::InvalidRequest("CreateTrigger needs a trigger".into()))?;
        caller.require(Action::Admin, &trigger.topic)?;
        let cmd = MetaCommand::CreateTrigger {
            trigger: from_request(trigger)?,
        };
        let t = self.change_trigger(cmd, r.timeout_ms).await?;
        Ok(Response::new(pb::CreateTriggerResponse {
            error: None,
            trigger: Some(to_wire(&t)),
        }))
    }

    async fn delete_trigger(
        &self,
        request: Request<pb::DeleteTriggerRequest>,
    ) -> Result<Response<pb::DeleteTriggerResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        self.require_trigger_admin(&caller, &r.name)?;
        let cmd = MetaCommand::DeleteTrigger { name: r.name };
        self.change_trigger(cmd, r.timeout_ms).await?;
        Ok(Response::new(pb::DeleteTriggerResponse { error: None }))
    }

    async fn set_trigger_state(
        &self,
        request: Request<pb::SetTriggerStateRequest>,
    ) -> Result<Response<pb::SetTriggerStateResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        self.require_trigger_admin(&caller, &r.name)?;
        let cmd = MetaCommand::SetTriggerPaused {
            name: r.name,
            paused: r.paused,
        };
        let t = self.change_trigger(cmd, r.timeout_ms).await?;
        Ok(Response::new(pb::SetTriggerStateResponse {
            error: None,
            trigger: Some(to_wire(&t)),
        }))
    }

    async fn list_triggers(
        &self,
        _request: Request<pb::ListTriggersRequest>,
    ) -> Result<Response<pb::ListTriggersResponse>, Status> {
        let triggers = self.inner.view.metadata().triggers().map(to_wire).collect();
        Ok(Response::new(pb::ListTriggersResponse {
            error: None,
            triggers,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_settings_take_defaults_and_round_trip() {
        let request = pb::Trigger {
            name: "t".into(),
            topic: "in".into(),
            command: "cat".into(),
            batch_size: Some(7),
            retry_backoff_ms: Some(60_000),
            ..Default::default()
        };
        let d = from_request(request).expect("valid");
        assert_eq!(d.batch_size, 7);
        assert_eq!(d.max_retries, 3);
        assert_eq!(d.dead_letter_topic, "t.dlq");
        assert_eq!(
            d.retry_backoff_max_ms, 60_000,
            "max backoff follows a larger first backoff"
        );
        assert_eq!(from_request(to_wire(&d)).expect("valid"), d);
        let neither = pb::Trigger {
            name: "t".into(),
            topic: "in".into(),
            ..Default::default()
        };
        assert!(from_request(neither).is_err());
    }
}
