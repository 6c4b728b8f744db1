"""sparkbox: a Jupyter kernel manager that keeps a started kernel in reserve.

A new notebook's kernel spends most of its first Spark cell starting a
driver: a JVM, a SparkContext registered with the master. This manager
starts the default kernel ahead (its startup file starts the driver in the
background), keeps it out of the kernel list, and hands it to the next
notebook that asks for the default kernel: that notebook's first cell finds
a driver ready. It then starts the next spare.

A spare costs the Jupyter container one idle kernel and driver (memory),
and no cores: notebook drivers use dynamic allocation, so a driver holds
executors only while it has tasks. SPARKBOX_SPARE_KERNELS sets how many are
kept (default 1; 0 turns this off).

A handed-over kernel is moved to its notebook's directory and given the
notebook's JPY_* variables; its Spark application keeps the name it was
started with ("<cluster>: kernel <pid>").
"""

import asyncio
import os

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Integer, default


class SparkboxKernelManager(AsyncMappingKernelManager):
    spare_kernels = Integer(help="Started kernels of the default kind kept ready for new notebooks.").tag(config=True)

    @default("spare_kernels")
    def _default_spare_kernels(self):
        try:
            return max(0, int(os.environ.get("SPARKBOX_SPARE_KERNELS", "1")))
        except ValueError:
            return 1

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._spares = []
        self._filling = None

    def _refill(self):
        if self.spare_kernels <= 0 or (self._filling is not None and not self._filling.done()):
            return
        self._filling = asyncio.ensure_future(self._fill())

    async def _fill(self):
        while len(self._spares) < self.spare_kernels:
            try:
                kernel_id = await super()._async_start_kernel(kernel_name=self.default_kernel_name, path="")
            except Exception as e:  # noqa: BLE001 - a spare is an optimisation
                self.log.warning("sparkbox: no spare kernel: %s", e)
                return
            self._spares.append(kernel_id)
            self.log.info("sparkbox: spare kernel %s ready", kernel_id)

    async def _hand_over(self, kernel_id, path, env):
        """Moves the spare to `path`'s directory and gives it the notebook's
        JPY_* variables; False when the kernel does not answer."""
        cwd = self.cwd_for_path(path or "")
        jpy = {k: v for k, v in (env or {}).items() if k.startswith("JPY_")}
        code = "import os as _o\n_o.chdir(%r)\n_o.environ.update(%r)\ndel _o\n" % (cwd, jpy)
        client = self.get_kernel(kernel_id).client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=30)
            msg_id = client.execute(code, silent=True, store_history=False)
            while True:
                reply = await client.get_shell_msg(timeout=30)
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    return reply["content"].get("status") == "ok"
        except Exception as e:  # noqa: BLE001 - a broken spare is replaced
            self.log.warning("sparkbox: spare kernel %s not handed over: %s", kernel_id, e)
            return False
        finally:
            client.stop_channels()

    async def _async_start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        name = kwargs.get("kernel_name") or self.default_kernel_name
        if kernel_id is None and name == self.default_kernel_name:
            while self._spares:
                spare = self._spares.pop(0)
                if spare not in self:
                    continue
                if await self._hand_over(spare, path, kwargs.get("env")):
                    self.log.info("sparkbox: kernel %s handed to %s", spare, path or "/")
                    self._refill()
                    return spare
                await self.shutdown_kernel(spare, now=True)
        kernel_id = await super()._async_start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        self._refill()
        return kernel_id

    start_kernel = _async_start_kernel

    def list_kernels(self):
        return [k for k in super().list_kernels() if k.get("id") not in self._spares]

    def start_spares(self):
        """Called once the server runs (see jupyter_server_config)."""
        self._refill()


def _jupyter_server_extension_points():
    return [{"module": "sbx_kernels"}]


def _load_jupyter_server_extension(serverapp):
    pass


async def _start_jupyter_server_extension(serverapp):
    """Starts the first spare once the server runs."""
    km = serverapp.kernel_manager
    if isinstance(km, SparkboxKernelManager):
        km.start_spares()
