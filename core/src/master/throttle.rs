//! `throttle`: what a user says about a task's pace at runtime, kept with its desired stage
//! (every source of the task); workers apply it to running subtasks without a restart.

use super::tasks::{load_task, task_view, update_stage};
use super::Master;
use crate::api::types::{TaskView, ThrottleRequest};
use crate::error::Error;

pub async fn set(m: &Master, name: &str, request: &ThrottleRequest) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    let desired = update_stage(m, name, |desired| {
        let t = &mut desired.throttle;
        match request {
            ThrottleRequest::On => t.hold = true,
            ThrottleRequest::Off => {
                t.hold = false;
                t.rate = None;
            }
            ThrottleRequest::Rate { rows_per_second } => t.rate = Some(*rows_per_second),
        }
        Ok(())
    })
    .await?;
    let t = &desired.throttle;
    tracing::info!(task = %name, hold = t.hold, rate = ?t.rate, "throttle set");
    task_view(m, task).await
}
