// tap runs this once after every test file (`tap.after` in package.json).
import { stopSharedTopologies } from './shared-topologies.ts'

await stopSharedTopologies()
