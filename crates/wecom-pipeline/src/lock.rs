//! One process per stream directory: an exclusive advisory lock on `<stream dir>/.lock`, held for the
//! life of a run or redrive. The OS releases it when the process dies (even by SIGKILL), so a crashed run
//! never blocks its restart, while two live writers can never interleave lines in the same segment.

use std::fs::{File, OpenOptions, TryLockError};

use wecom_store::StreamLayout;

use crate::error::PipelineError;

#[derive(Debug)]
pub struct StreamLock {
    _file: File,
}

impl StreamLock {
    pub fn acquire(layout: &StreamLayout) -> Result<Self, PipelineError> {
        let dir = layout.dir();
        std::fs::create_dir_all(dir).map_err(|source| {
            PipelineError::Local(wecom_store::StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })
        })?;
        let path = layout.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| {
                PipelineError::Local(wecom_store::StoreError::Io {
                    path: path.clone(),
                    source,
                })
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(PipelineError::Locked {
                dir: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(source)) => {
                Err(PipelineError::Local(wecom_store::StoreError::Io {
                    path,
                    source,
                }))
            }
        }
    }
}
