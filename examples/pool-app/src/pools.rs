//! A worker's pool, whatever `REDIS_TOPOLOGY` says: one server; a Redis Cluster, where each
//! pooled connection is a cluster connection holding a link to every node (so every node holds
//! the whole pool: a pool per node, as go-redis and Jedis keep); or the master the sentinels name.

use deadpool::managed::{self, Hook, HookError};
use deadpool_redis::{PoolError, Runtime, Status};
use redis::aio::ConnectionLike;
use redis::{Cmd, IntoConnectionInfo as _, Pipeline, RedisError, RedisFuture, Value};

use crate::config::{Config, Topology};

pub enum Pool {
    Standalone(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
    Sentinel(deadpool_redis::sentinel::Pool),
}

/// A connection checked out of a [`Pool`].
pub enum Conn {
    Standalone(deadpool_redis::Connection),
    Cluster(deadpool_redis::cluster::Connection),
    Sentinel(deadpool_redis::sentinel::Connection),
}

impl Pool {
    /// One worker's pool of exactly the configured size, naming its connections
    /// `pool-app:<pod>:w<worker>` so that CLIENT LIST (on every node) attributes them.
    pub fn build(c: &Config, worker: usize) -> Result<Pool, String> {
        let name = format!("pool-app:{}:w{worker}", c.pod_name);
        let infos = c
            .redis_addresses
            .iter()
            .map(|(h, p)| redis::ConnectionAddr::Tcp(h.clone(), *p).into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("REDIS_ADDRESS={:?}: {e}", c.redis_address))?;
        let bad = |e: &dyn std::fmt::Display| format!("redis {}: {e}", c.redis_address);
        Ok(match &c.topology {
            Topology::Standalone => {
                let conn_config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(c.connect_timeout))
                    .set_response_timeout(Some(c.socket_timeout));
                let info = infos.into_iter().next().ok_or("REDIS_ADDRESS is empty")?;
                let manager = deadpool_redis::Manager::new_with_config(info, conn_config).map_err(|e| bad(&e))?;
                Pool::Standalone(sized(deadpool_redis::Pool::builder(manager), c, name).map_err(|e| bad(&e))?)
            }
            Topology::Cluster { read_from_replicas } => {
                let manager = deadpool_redis::cluster::Manager::new(infos, *read_from_replicas).map_err(|e| bad(&e))?;
                Pool::Cluster(sized(deadpool_redis::cluster::Pool::builder(manager), c, name).map_err(|e| bad(&e))?)
            }
            Topology::Sentinel { master } => {
                let manager = deadpool_redis::sentinel::Manager::new(
                    infos,
                    master.clone(),
                    None,
                    deadpool_redis::sentinel::SentinelServerType::Master,
                )
                .map_err(|e| bad(&e))?;
                Pool::Sentinel(sized(deadpool_redis::sentinel::Pool::builder(manager), c, name).map_err(|e| bad(&e))?)
            }
        })
    }

    pub async fn get(&self) -> Result<Conn, PoolError> {
        Ok(match self {
            Pool::Standalone(p) => Conn::Standalone(p.get().await?),
            Pool::Cluster(p) => Conn::Cluster(p.get().await?),
            Pool::Sentinel(p) => Conn::Sentinel(p.get().await?),
        })
    }

    pub fn status(&self) -> Status {
        match self {
            Pool::Standalone(p) => p.status(),
            Pool::Cluster(p) => p.status(),
            Pool::Sentinel(p) => p.status(),
        }
    }
}

/// The pool settings every topology shares: its size and how long to wait for a connection.
fn sized<M, W>(
    builder: managed::PoolBuilder<M, W>,
    c: &Config,
    name: String,
) -> Result<managed::Pool<M, W>, managed::BuildError>
where
    M: managed::Manager<Error = RedisError>,
    M::Type: ConnectionLike + Send,
    W: From<managed::Object<M>>,
{
    builder
        .max_size(c.max_connections)
        .wait_timeout(Some(c.checkout_timeout))
        .create_timeout(Some(c.connect_timeout))
        .recycle_timeout(Some(c.socket_timeout))
        .runtime(Runtime::Tokio1)
        .post_create(named(name))
        .build()
}

/// Names each new connection (on a cluster, CLIENT SETNAME goes to every node).
fn named<M>(name: String) -> Hook<M>
where
    M: managed::Manager<Error = RedisError>,
    M::Type: ConnectionLike + Send,
{
    Hook::async_fn(move |conn: &mut M::Type, _| {
        let name = name.clone();
        Box::pin(async move {
            let _: () =
                redis::cmd("CLIENT").arg("SETNAME").arg(&name).query_async(conn).await.map_err(HookError::Backend)?;
            Ok(())
        })
    })
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}
