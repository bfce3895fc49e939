// ESM entry: `import bifrost from 'bifrost'` or named imports.
import bifrost from './index.js'

export const { Gateway, Job, ChunkStream, Accumulator, BifrostError, ERROR_CODES, optimalConcurrency, version } = bifrost
export default bifrost
