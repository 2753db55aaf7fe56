// Package oiptest holds test doubles of the oip package's collaborators, for the tests of the
// fronts built on it (oip, oiphttp).
package oiptest

import (
	"context"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// Deployer is an oip.Deployer that records the Deploy and Undeploy calls that reach it, with
// their authorization, and answers Err.
type Deployer struct {
	Deploys   []*inferencev1.DeployRequest
	Undeploys []*inferencev1.UndeployRequest
	Auths     []string
	Err       *rpcstatus.Error
}

func (d *Deployer) Deploy(_ context.Context, authorization string, req *inferencev1.DeployRequest) *rpcstatus.Error {
	d.Deploys = append(d.Deploys, req)
	d.Auths = append(d.Auths, authorization)
	return d.Err
}

func (d *Deployer) Undeploy(_ context.Context, authorization string, req *inferencev1.UndeployRequest) *rpcstatus.Error {
	d.Undeploys = append(d.Undeploys, req)
	d.Auths = append(d.Auths, authorization)
	return d.Err
}

// Calls is how many calls reached it.
func (d *Deployer) Calls() int { return len(d.Deploys) + len(d.Undeploys) }
